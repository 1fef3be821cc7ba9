package mandel

import (
	"encoding/binary"
	"math"
	"testing"
)

// TestColorRowMatchesColor: colorRow (16 values at a time where the CPU
// allows, see colorRowVec) gives color's colour for every value, whatever
// values share its group of 16.
func TestColorRowMatchesColor(t *testing.T) {
	specials := []float32{Inside, -0.5, 0, float32(math.Copysign(0, -1)), 0.0625, 1, 30.99, 63.9999, 64, 1e6,
		1 << 27, math.Nextafter32(1<<27, 0), math.Nextafter32(1<<27, 1<<28), // index 2^31 (colorRowVec's limit) and around
		1 << 57, 1 << 58, 3e18, math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	var ordinary []float32
	for i := range 10000 {
		ordinary = append(ordinary, float32(i)*0.0137-3)
	}
	// alone puts each special value in a row of ordinary ones, at each
	// place of a group of 16.
	var alone []float32
	for i, s := range specials {
		for j := range 16 {
			group := append([]float32(nil), ordinary[16*i:16*i+16]...)
			group[j] = s
			alone = append(alone, group...)
		}
	}
	cases := []struct {
		name string
		vals []float32
	}{
		{"special values first", append(append([]float32(nil), specials...), ordinary...)},
		{"special values last", append(append([]float32(nil), ordinary...), specials...)},
		{"each special value among ordinary ones", alone},
		{"ordinary values", ordinary},
		{"a row of 15", ordinary[:15]},
		{"a row of 33", ordinary[100:133]},
	}
	for _, tc := range cases {
		for name, p := range palettes {
			row := make([]byte, 4*len(tc.vals))
			p.colorRow(row, tc.vals)
			for i, v := range tc.vals {
				if got, want := binary.LittleEndian.Uint32(row[4*i:]), p.color(v); got != want {
					t.Fatalf("%s, %s: value %d, colorRow(%v) = %08x, color %08x", tc.name, name, i, v, got, want)
				}
			}
		}
	}
}
