//go:build !(goexperiment.simd && amd64)

package mandel

// vectorKernels is empty in builds without GOEXPERIMENT=simd (or off
// amd64): renders use the scalar kernel.
func vectorKernels() []kernel { return nil }
