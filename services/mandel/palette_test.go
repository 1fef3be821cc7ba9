package mandel

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestColorRowMatchesColor(t *testing.T) {
	vals := []float32{Inside, -0.5, 0, float32(math.Copysign(0, -1)), 0.0625, 1, 30.99, 63.9999, 64, 1e6,
		1 << 57, 1 << 58, 3e18, math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	for i := range 10000 {
		vals = append(vals, float32(i)*0.0137-3)
	}
	for name, p := range palettes {
		row := make([]byte, 4*len(vals))
		p.colorRow(row, vals)
		for i, v := range vals {
			if got, want := binary.LittleEndian.Uint32(row[4*i:]), p.color(v); got != want {
				t.Fatalf("%s: colorRow(%v) = %08x, color %08x", name, v, got, want)
			}
		}
	}
}
