//go:build !(goexperiment.simd && amd64)

package mandel

// Without the vector loops of rows_vec.go the portable loops do all.

// colorRowVec is colorRow's vector loop, none in builds without
// GOEXPERIMENT=simd (or off amd64).
func colorRowVec(p *palette, row []byte, nus []float32) int { return 0 }

// upRGBVec is upRGB's vector loop, none in builds without
// GOEXPERIMENT=simd (or off amd64).
func upRGBVec(line, row, prev []byte) int { return 0 }
