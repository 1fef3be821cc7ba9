package mandel

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"runtime"
	"testing"
)

// Benchmark frames: the seed's default picture and a heavy boundary frame.
var benchFrames = []struct {
	name  string
	frame Frame
}{
	{"seed500x500i30", SeedFrame()},
	{"heavy1920x1080i1000", Frame{CX: -0.7436439, CY: 0.1318259, Scale: 0.00001, Width: 1920, Height: 1080, MaxIter: 1000}},
}

func BenchmarkRender(b *testing.B) {
	for _, bf := range benchFrames {
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/workers=%d", bf.name, workers), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := RenderFrame(context.Background(), bf.frame, workers); err != nil {
						b.Fatal(err)
					}
				}
				px := float64(bf.frame.Width*bf.frame.Height) * float64(b.N)
				b.ReportMetric(px/b.Elapsed().Seconds()/1e6, "Mpx/s")
			})
		}
	}
}

// BenchmarkRenderSeedTiles renders the seed frame the way the seed cluster
// did: 100 tiles of 50x50, one worker each.
func BenchmarkRenderSeedTiles(b *testing.B) {
	refs := SeedFrame().Tiles(SeedTileSize, SeedTileSize)
	b.ReportAllocs()
	for b.Loop() {
		for _, r := range refs {
			if _, err := Render(context.Background(), r.Tile, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkEncodePNG(b *testing.B) {
	for _, bf := range benchFrames {
		img, err := RenderFrame(context.Background(), bf.frame, 0)
		if err != nil {
			b.Fatal(err)
		}
		for _, lv := range []struct {
			name  string
			level png.CompressionLevel
		}{{"BestSpeed", png.BestSpeed}, {"Default", png.DefaultCompression}} {
			enc := newPNGEncoder(lv.level)
			b.Run(bf.name+"/"+lv.name, func(b *testing.B) {
				var buf bytes.Buffer
				if err := enc.Encode(&buf, img); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := enc.Encode(io.Discard, img); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(buf.Len())/1024, "KiB")
			})
		}
		// EncodePNG: the fast path (RGB, Up filter) against the standard
		// encoder at the same level above.
		b.Run(bf.name+"/EncodePNG-RGB-Up", func(b *testing.B) {
			var buf bytes.Buffer
			if err := EncodePNG(&buf, img); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := EncodePNG(io.Discard, img); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(buf.Len())/1024, "KiB")
		})
	}
}

// BenchmarkKernel compares the two-lane row kernel with one orbit at a time
// (smoothIter per pixel) on the heavy frame, single-threaded.
func BenchmarkKernel(b *testing.B) {
	f := Frame{CX: -0.7436439, CY: 0.1318259, Scale: 0.00001 * 4, Width: 480, Height: 270, MaxIter: 1000}
	tile := f.Tile()
	row := make([]float32, tile.Width)
	b.Run("lanes=1", func(b *testing.B) {
		for b.Loop() {
			for py := range tile.Height {
				ci := coordIm(tile.Y0, tile.Step, py)
				for px := range row {
					row[px] = smoothIter(coordRe(tile.X0, tile.Step, px), ci, tile.MaxIter)
				}
			}
		}
	})
	b.Run("lanes=2", func(b *testing.B) {
		for b.Loop() {
			for py := range tile.Height {
				iterRow(row, &tile, py)
			}
		}
	})
}

// BenchmarkAppendBand encodes rendered frames as a slave does for the
// master (AppendBand), in the bands the master cuts them into by default:
// the seed view in 8 bands of 63 rows, the bench's 4K frame in bands of
// 18 rows. KiB is the frame's total.
func BenchmarkAppendBand(b *testing.B) {
	for _, bc := range []struct {
		name  string
		frame Frame
		rows  int
	}{
		{"seed500x500i30", SeedFrame(), 63},
		{"heavy3840x2160i1000", Frame{CX: -0.7436447860, CY: 0.1318252536, Scale: 0.0006 / 3840, Width: 3840, Height: 2160, MaxIter: 1000}, 18},
	} {
		img, err := RenderFrame(context.Background(), bc.frame, 0)
		if err != nil {
			b.Fatal(err)
		}
		w, h := bc.frame.Width, bc.frame.Height
		b.Run(bc.name, func(b *testing.B) {
			var band []byte
			size := 0
			for b.Loop() {
				size = 0
				for y := 0; y < h; y += bc.rows {
					n := min(bc.rows, h-y)
					band, err = AppendBand(band[:0], img.Pix[4*w*y:4*w*(y+n)], w, n)
					if err != nil {
						b.Fatal(err)
					}
					size += len(band)
				}
			}
			b.ReportMetric(float64(size)/1024, "KiB")
			b.SetBytes(int64(3 * w * h))
		})
	}
}

// BenchmarkColorRow colours the seed view's smooth values row by row
// into one picture (colorRow, what every render does after the kernel).
func BenchmarkColorRow(b *testing.B) {
	f := SeedFrame()
	iters, err := RenderIter(context.Background(), f.Tile(), 0)
	if err != nil {
		b.Fatal(err)
	}
	pal, _ := lookupPalette("")
	pix := make([]byte, 4*len(iters))
	for b.Loop() {
		for y := range f.Height {
			pal.colorRow(pix[4*f.Width*y:4*f.Width*(y+1)], iters[f.Width*y:f.Width*(y+1)])
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(iters)), "ns/px")
}
