package mandel

import (
	"bytes"
	"context"
	"hash/adler32"
	"testing"
)

// TestBandWriterJoinsBands renders frames, encodes them as bands of
// several heights (AppendBand) and joins them (BandWriter): the PNG must
// decode to the frame's pixels.
func TestBandWriterJoinsBands(t *testing.T) {
	frames := []Frame{
		SeedFrame(),
		{CX: -0.7436447860, CY: 0.1318252536, Scale: 1e-5, Width: 301, Height: 97, MaxIter: 300, Colormap: "fire"},
		{CX: -0.5, Scale: 0.1, Width: 1, Height: 5, MaxIter: 20},
	}
	for _, f := range frames {
		img, err := RenderFrame(context.Background(), f, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, rows := range []int{1, 7, 74, f.Height} {
			var out bytes.Buffer
			bw, err := NewBandWriter(&out, f.Width, f.Height)
			if err != nil {
				t.Fatal(err)
			}
			var band []byte
			for y := 0; y < f.Height; y += rows {
				h := min(rows, f.Height-y)
				band, err = AppendBand(band[:0], img.Pix[4*f.Width*y:4*f.Width*(y+h)], f.Width, h)
				if err != nil {
					t.Fatal(err)
				}
				if err := bw.WriteBand(band, h); err != nil {
					t.Fatal(err)
				}
			}
			if err := bw.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := DecodePNG(out.Bytes())
			if err != nil {
				t.Fatalf("%dx%d in bands of %d rows: %v", f.Width, f.Height, rows, err)
			}
			if !bytes.Equal(got.Pix, img.Pix) {
				t.Fatalf("%dx%d in bands of %d rows: the PNG decodes to other pixels", f.Width, f.Height, rows)
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
