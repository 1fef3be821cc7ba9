//go:build !(goexperiment.simd && amd64)

package mandel

// colorRowVec is colorRow's vector loop, none in builds without
// GOEXPERIMENT=simd (or off amd64).
func colorRowVec(p *palette, row []byte, nus []float32) int { return 0 }
