package slave

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/calclab/calclab/services/mandel"
)

// TestTileFormats asks a slave for the same frame band in each format,
// twice (the second time from pooled buffers), and checks each against an
// in-process render: png decodes to its pixels, raw is its pixels, band
// joined by mandel.BandWriter decodes to them.
func TestTileFormats(t *testing.T) {
	s, err := New(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	f := mandel.Frame{CX: -0.75, CY: 0.1, Scale: 1e-3, Width: 123, Height: 40, MaxIter: 200}
	ref := f.Tiles(f.Width, 17)[1] // rows 17..33
	want, err := mandel.Render(context.Background(), ref.Tile, 1)
	if err != nil {
		t.Fatal(err)
	}
	get := func(format string) []byte {
		q := ref.Tile.Query()
		q.Set("format", format)
		resp, err := http.Get(srv.URL + "/mandelbrot/tile?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("format %s: %d %v %s", format, resp.StatusCode, err, body)
		}
		return body
	}
	for range 2 {
		img, err := mandel.DecodePNG(get(FormatPNG))
		if err != nil || !bytes.Equal(img.Pix, want.Pix) {
			t.Errorf("png: %v, or other pixels", err)
		}
		if raw := get(FormatRaw); !bytes.Equal(raw, want.Pix) {
			t.Error("raw: other pixels")
		}
		var out bytes.Buffer
		bw, err := mandel.NewBandWriter(&out, ref.Tile.Width, ref.Tile.Height)
		if err != nil {
			t.Fatal(err)
		}
		if err := bw.WriteBand(get(FormatBand), ref.Tile.Height); err != nil {
			t.Fatal(err)
		}
		if err := bw.Close(); err != nil {
			t.Fatal(err)
		}
		img, err = mandel.DecodePNG(out.Bytes())
		if err != nil || !bytes.Equal(img.Pix, want.Pix) {
			t.Errorf("band: %v, or other pixels", err)
		}
	}
	resp, err := http.Get(srv.URL + "/mandelbrot/tile?" + ref.Tile.Query().Encode() + "&format=jpeg")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("format=jpeg: %d, want 400", resp.StatusCode)
	}
}
