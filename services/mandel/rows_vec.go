//go:build goexperiment.simd && amd64

package mandel

// Loops over a row with AVX-512: colouring (colorRow), the PNG Up filter
// (upRGB) and runDeflater's scan of 64 bytes (scan64). Each does what it
// can and the portable code does the rest, with the same result.

import "simd/archsimd"

// hasAVX512 is whether colorRowVec can run.
var hasAVX512 = archsimd.X86.AVX512()

// colorRowVec does colorRow's work 16 values at a time with AVX-512, from
// the start of nus, and returns how many values it did (0 without
// AVX-512): the scalar loop does the rest. The palette index is
// computed in float32 (nu·16 is exact there as in float64: 16 is a power
// of 2) and truncated to int32, the same index as colorRow's int64 below
// 2^31; a group with a larger value goes to the scalar loop. Only the
// lookup is scalar: 16 loads from indexes stored in a buffer (there is no
// gather in archsimd). On the seed view this took colouring from 1.40-1.61
// to 0.98-1.09 ns a pixel (BenchmarkColorRow). (Storing the colours
// straight into row and then the black ones, or choosing black per
// pixel in the scalar loop, was slower.)
func colorRowVec(p *palette, row []byte, nus []float32) int {
	if !hasAVX512 {
		return 0
	}
	scale := archsimd.BroadcastFloat32x16(float32(entriesPerIter))
	limit := archsimd.BroadcastFloat32x16(1 << 31)
	zero := archsimd.BroadcastFloat32x16(0)
	indexMask := archsimd.BroadcastInt32x16(PaletteSize - 1)
	black := archsimd.BroadcastUint32x16(blackRGBA)
	var idx [16]int32
	var cols [16]uint32
	i := 0
	for ; i+16 <= len(nus); i += 16 {
		nu := archsimd.LoadFloat32x16Slice(nus[i : i+16])
		pos := nu.Mul(scale)
		if pos.GreaterEqual(limit).ToBits() != 0 {
			break // a huge value: the scalar loop takes it from here
		}
		// Negative and NaN values give garbage indexes, in range and
		// replaced by black, as in colorRow.
		pos.ConvertToInt32().And(indexMask).StoreSlice(idx[:])
		for j, k := range idx {
			cols[j] = p[k&(PaletteSize-1)]
		}
		c := archsimd.LoadUint32x16Slice(cols[:]).Merge(black, nu.GreaterEqual(zero))
		c.AsUint8x64().StoreSlice(row[4*i : 4*i+64])
	}
	return i
}

// hasVBMI is whether upRGBVec can run (VPERMB, a permute of bytes).
var hasVBMI = hasAVX512 && archsimd.X86.AVX512VBMI()

// rgbFromRGBA picks the R, G and B bytes of 16 RGBA pixels (the last 16
// indexes are not used).
var rgbFromRGBA = func() (idx [64]uint8) {
	for i := range 48 {
		idx[i] = uint8(i/3*4 + i%3)
	}
	return idx
}()

// upRGBVec does upRGB's work 16 pixels at a time with AVX-512 (the
// subtraction of 64 bytes, a byte permute that drops the alpha bytes),
// from the start of the row, while line has room for a 64-byte store, and
// returns how many pixels it did (0 without AVX-512 VBMI): upRGB does the
// rest.
func upRGBVec(line, row, prev []byte) int {
	if !hasVBMI {
		return 0
	}
	pick := archsimd.LoadUint8x64(&rgbFromRGBA)
	x := 0
	for ; 4*x+64 <= len(row) && 3*x+64 <= len(line); x += 16 {
		a := archsimd.LoadUint8x64Slice(row[4*x : 4*x+64])
		p := archsimd.LoadUint8x64Slice(prev[4*x : 4*x+64])
		a.Sub(p).Permute(pick).StoreSlice(line[3*x : 3*x+64])
	}
	return x
}

// chunkWeights are the positions 0..63 of a 64-byte chunk (scan64Vec's
// weighted sum).
var chunkWeights = func() (w [64]int8) {
	for k := range w {
		w[k] = int8(k)
	}
	return w
}()

// scan64Vec is scan64 of the 64 bytes p[i:i+64] after p[i-1] (i >= 1)
// with AVX-512 (call it only if hasAVX512): the mask from a compare with
// the same bytes loaded one byte earlier, the byte sum from VPSADBW and
// the weighted sum from VPMADDUBSW and VPMADDWD (at most 255*125 per
// pair of bytes: no saturation), each summed across the vector.
func scan64Vec(p []byte, i int) (mask, sum, wsum uint64) {
	a := archsimd.LoadUint8x64Slice(p[i : i+64])
	mask = a.NotEqual(archsimd.LoadUint8x64Slice(p[i-1 : i+63])).ToBits()
	s := a.SumAbsDiff(archsimd.BroadcastUint8x64(0)).AsUint64x8()
	s2 := s.GetLo().Add(s.GetHi())
	s1 := s2.GetLo().Add(s2.GetHi())
	w := a.DotProductPairsSaturated(archsimd.LoadInt8x64(&chunkWeights)).DotProductPairs(archsimd.BroadcastInt16x32(1))
	w8 := w.GetLo().Add(w.GetHi())
	w4 := w8.GetLo().Add(w8.GetHi())
	w4 = w4.AddPairs(w4)
	w4 = w4.AddPairs(w4)
	return mask, s1.GetElem(0) + s1.GetElem(1), uint64(w4.GetElem(0))
}
