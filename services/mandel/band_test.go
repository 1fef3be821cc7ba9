package mandel

import (
	"bytes"
	"context"
	"hash/adler32"
	"image"
	"math/rand/v2"
	"testing"
)

// TestBandWriterJoinsBands renders frames (and makes pictures no render
// gives: noise, a picture of one colour), encodes them as bands of
// several heights (AppendBand) and joins them (BandWriter): the PNG must
// decode to the same pixels.
func TestBandWriterJoinsBands(t *testing.T) {
	var imgs []*image.RGBA
	for _, f := range []Frame{
		SeedFrame(),
		{CX: -0.7436447860, CY: 0.1318252536, Scale: 1e-5, Width: 301, Height: 97, MaxIter: 300, Colormap: "fire"},
		{CX: -0.5, Scale: 0.1, Width: 1, Height: 5, MaxIter: 20},
	} {
		img, err := RenderFrame(context.Background(), f, 0)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	noise := image.NewRGBA(image.Rect(0, 0, 203, 77))
	for i := range noise.Pix {
		noise.Pix[i] = byte(rnd.Uint32())
		if i%4 == 3 {
			noise.Pix[i] = 0xff
		}
	}
	flat := image.NewRGBA(image.Rect(0, 0, 640, 80))
	for i := range flat.Pix {
		flat.Pix[i] = []byte{40, 40, 40, 0xff}[i%4]
	}
	imgs = append(imgs, noise, flat)
	for _, img := range imgs {
		w, h := img.Rect.Dx(), img.Rect.Dy()
		for _, rows := range []int{1, 7, 74, h} {
			var out bytes.Buffer
			bw, err := NewBandWriter(&out, w, h)
			if err != nil {
				t.Fatal(err)
			}
			var band []byte
			for y := 0; y < h; y += rows {
				n := min(rows, h-y)
				band, err = AppendBand(band[:0], img.Pix[4*w*y:4*w*(y+n)], w, n)
				if err != nil {
					t.Fatal(err)
				}
				if err := bw.WriteBand(band, n); err != nil {
					t.Fatal(err)
				}
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := DecodePNG(out.Bytes())
			if err != nil {
				t.Fatalf("%dx%d in bands of %d rows: %v", w, h, rows, err)
			}
			if !bytes.Equal(got.Pix, img.Pix) {
				t.Fatalf("%dx%d in bands of %d rows: the PNG decodes to other pixels", w, h, rows)
			}
		}
	}
}

func TestBandWriterChecksRows(t *testing.T) {
	var out bytes.Buffer
	bw, err := NewBandWriter(&out, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	band, err := AppendBand(nil, make([]byte, 4*4*2), 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := bw.WriteBand(band, 3); err == nil {
		t.Error("a band past the picture's end was taken")
	}
	if err := bw.WriteBand(band[:5], 1); err == nil {
		t.Error("a 5-byte band was taken")
	}
	if err := bw.Close(); err == nil {
		t.Error("Close before every row was written succeeded")
	}
	if _, err := AppendBand(nil, make([]byte, 5), 4, 2); err == nil {
		t.Error("AppendBand took 5 bytes for 4x2 pixels")
	}
}

func TestAdler32Combine(t *testing.T) {
	data := bytes.Repeat([]byte("calclab \xff\x00\x80"), 20000)
	for _, cut := range []int{0, 1, 5552, 65521, 100000, len(data)} {
		a, b := data[:cut], data[cut:]
		got := adler32Combine(adler32.Checksum(a), adler32.Checksum(b), int64(len(b)))
		if want := adler32.Checksum(data); got != want {
			t.Errorf("cut at %d: %08x, want %08x", cut, got, want)
		}
	}
}

// TestUpRGB compares upRGB (16 pixels at a time where the CPU allows, see
// upRGBVec, then 2 at a time) with the filter byte by byte, on rows of
// random pixels of every width up to 70 and a wide one.
func TestUpRGB(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 6))
	widths := []int{500, 3840}
	for w := range 71 {
		widths = append(widths, w)
	}
	for _, width := range widths {
		row, prev := make([]byte, 4*width), make([]byte, 4*width)
		for i := range row {
			row[i], prev[i] = byte(rnd.Uint32()), byte(rnd.Uint32())
		}
		line := make([]byte, 3*width+2)
		upRGB(line, row, prev)
		for x := range width {
			for c := range 3 {
				if got, want := line[3*x+c], row[4*x+c]-prev[4*x+c]; got != want {
					t.Fatalf("width %d, pixel %d, channel %d: %#x, want %#x", width, x, c, got, want)
				}
			}
		}
	}
}
