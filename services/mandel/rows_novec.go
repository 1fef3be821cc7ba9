//go:build !(goexperiment.simd && amd64)

package mandel

// Without the vector loops of rows_vec.go the portable loops do all.

// colorRowVec is colorRow's vector loop, none in builds without
// GOEXPERIMENT=simd (or off amd64).
func colorRowVec(p *palette, row []byte, nus []float32) int { return 0 }

// upRGBVec is upRGB's vector loop, none in builds without
// GOEXPERIMENT=simd (or off amd64).
func upRGBVec(line, row, prev []byte) int { return 0 }

// hasAVX512 is false: write uses scan64 only.
const hasAVX512 = false

// scan64Vec is never called in builds without GOEXPERIMENT=simd.
func scan64Vec(p []byte, i int) (mask, sum, wsum uint64) { panic("mandel: scan64Vec without AVX-512") }
