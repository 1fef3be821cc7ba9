package mandel

import (
	"context"
	"math"
	"testing"
)

// kernelFrames are frames on which every kernel must give the scalar
// kernel's values bit for bit: the seed view, boundary regions, deep zooms
// down to the float64 pitch limit, max_iter from 1 to 100,000, huge |c|,
// odd widths (partial vectors, tails) and rows off the real axis.
var kernelFrames = []struct {
	name string
	f    Frame
}{
	{"seed", SeedFrame()},
	{"max_iter=1", Frame{CX: -0.5, Scale: 3.0 / 97, Width: 97, Height: 61, MaxIter: 1}},
	{"max_iter=15", Frame{CX: -0.5, Scale: 3.0 / 97, Width: 97, Height: 61, MaxIter: 15}},
	{"max_iter=17", Frame{CX: -0.5, Scale: 3.0 / 203, Width: 203, Height: 101, MaxIter: 17}},
	// around flatMaxIter (64): flat4/flat8 up to it, the main kernel above
	{"max_iter=64_boundary", Frame{CX: -0.7436447860, CY: 0.1318252536, Scale: 1e-4, Width: 131, Height: 77, MaxIter: 64}},
	{"max_iter=65_boundary", Frame{CX: -0.7436447860, CY: 0.1318252536, Scale: 1e-4, Width: 131, Height: 77, MaxIter: 65}},
	{"max_iter=64_tip", Frame{CX: -2, Scale: 1e-9, Width: 45, Height: 9, MaxIter: 64}},
	{"max_iter=30_narrow", Frame{CX: -0.75, CY: 0.1, Scale: 1e-3, Width: 7, Height: 50, MaxIter: 30}},
	{"whole_set_i1000", Frame{CX: -0.5, Scale: 3.0 / 333, Width: 333, Height: 250, MaxIter: 1000}},
	{"huge_c", Frame{CX: 0, Scale: 1e3, Width: 64, Height: 64, MaxIter: 50}},
	{"boundary_i1000", Frame{CX: -0.7436447860, CY: 0.1318252536, Scale: 1.5625e-07 * 12, Width: 320, Height: 180, MaxIter: 1000}},
	{"seahorse_i5000", Frame{CX: -0.74364, CY: 0.13182, Scale: 2e-7, Width: 150, Height: 100, MaxIter: 5000}},
	{"deep_zoom_1e-13_i100000", Frame{CX: -1.7687788370, CY: -0.0017389, Scale: 1e-13, Width: 120, Height: 80, MaxIter: 100_000}},
	{"deep_zoom_1e-15_i20000", Frame{CX: -0.743643887037151, CY: 0.131825904205330, Scale: 1e-15, Width: 100, Height: 70, MaxIter: 20_000}},
	{"neck_i100000", Frame{CX: -0.75, CY: 1e-4, Scale: 2e-6, Width: 90, Height: 40, MaxIter: 100_000}},
	{"period3_bulb_i100000", Frame{CX: -0.122, CY: 0.745, Scale: 1e-3, Width: 70, Height: 50, MaxIter: 100_000}},
	{"cusp_i100000", Frame{CX: 0.2501, CY: 0, Scale: 1e-6, Width: 77, Height: 33, MaxIter: 100_000}},
}

func TestKernelsGiveIdenticalValues(t *testing.T) {
	ks := Kernels()
	if ks[len(ks)-1].Name != ScalarKernel {
		t.Fatalf("Kernels() = %v: the scalar kernel must be last", ks)
	}
	if len(ks) == 1 {
		t.Log("only the scalar kernel in this build/CPU (no GOEXPERIMENT=simd or no AVX2): nothing to compare")
	}
	// Every row to the vector kernels, whatever its max_iter.
	defer func(v int) { vecMinIter = v }(vecMinIter)
	vecMinIter = 0
	ctx := context.Background()
	for _, kf := range kernelFrames {
		if testing.Short() && kf.f.MaxIter >= 100_000 && kf.name != "period3_bulb_i100000" {
			continue
		}
		t.Run(kf.name, func(t *testing.T) {
			tile := kf.f.Tile()
			want, err := RenderIterKernel(ctx, tile, 0, ScalarKernel)
			if err != nil {
				t.Fatal(err)
			}
			escaped := 0
			for _, v := range want {
				if v != Inside {
					escaped++
				}
			}
			for _, k := range ks[:len(ks)-1] {
				got, err := RenderIterKernel(ctx, tile, 0, k.Name)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s: pixel (%d,%d): %v, scalar %v", k.Name, i%tile.Width, i/tile.Width, got[i], want[i])
					}
				}
			}
			t.Logf("%d kernels agree on %d pixels (%d escaped)", len(ks), len(want), escaped)
		})
	}
}

// BenchmarkKernels renders the bench's 4K boundary frame (scaled down to
// 960x540 at the same pitch x4) with each kernel on one core and reports
// brute-force iterations per second.
func BenchmarkKernels(b *testing.B) {
	f := Frame{CX: -0.7436447860, CY: 0.1318252536, Scale: 1.5625e-07 * 4, Width: 960, Height: 540, MaxIter: 1000}
	iters, err := Iterations(context.Background(), f.Tile())
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range Kernels() {
		b.Run(k.Name, func(b *testing.B) {
			for b.Loop() {
				if _, err := RenderIterKernel(context.Background(), f.Tile(), 1, k.Name); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(iters)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Giter/s")
		})
	}
}

func TestIterationsCountsBruteForce(t *testing.T) {
	cases := []struct {
		name   string
		cr, ci float64
		max    int
		want   int64
	}{
		{"c=1 escapes at z_3=5", 1, 0, 100, 3},
		{"c=0 is skipped (cardioid)", 0, 0, 100, 0},
		{"c=-1 is skipped (bulb)", -1, 0, 100, 0},
		{"c=-2 never escapes: max_iter", -2, 0, 77, 77},
		{"c=3 escapes at z_1", 3, 0, 100, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tile := Tile{X0: tc.cr, Y0: tc.ci, Step: 1e-3, Width: 1, Height: 1, MaxIter: tc.max}
			got, err := Iterations(context.Background(), tile)
			if err != nil || got != tc.want {
				t.Fatalf("Iterations = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}
