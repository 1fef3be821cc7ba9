package slave

import (
	"encoding/base64"
	"encoding/json"
	"image"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/calclab/calclab/services/mandel"
)

// pyFloat formats v as Python's str(float) does for the seed frontend's
// values (aiohttp puts str(value) in the query): the shortest round-trip
// digits, with ".0" on integral values.
func pyFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// seedBlack says whether the seed's worker draws c black at max_iteration
// m: its loop tests |z| > 2 (as a square root) for iteration = 1, 2, ...
// while iteration < m, on z = 0 first, stepping z before every test but the
// first; a point is black when no test saw it escape.
func seedBlack(m, cr, ci float64) bool {
	var zr, zi float64
	for it := 1.0; it < m; it++ {
		if it > 1 {
			nzr := float64(zr*zr) - float64(zi*zi) + cr
			zi = float64(2*zr*zi) + ci
			zr = nzr
		}
		if math.Sqrt(float64(zr*zr)+float64(zi*zi)) > 2 {
			return false
		}
	}
	return true
}

// TestSeedCallKeepsSeedSemantics sends the seed frontend's 100 requests for
// its default view exactly as it sends them (max_iteration=30.0, positions
// computed in float64 and printed by Python) to a real slave over loopback:
// every one is answered 200 with a 50x50 PNG whose black pixels are
// exactly the seed's set, which is not ours at max_iter=30 (tile (2, 4):
// 1977 black pixels for the seed, 1962 for /mandelbrot/tile).
func TestSeedCallKeepsSeedSemantics(t *testing.T) {
	s, err := New(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	maxIteration, startX, startY, length := 30.0, -1.5, 1.5, 3.0 // the frontend's form defaults
	step := length / 10.0
	black := 0
	for i := range 10 {
		for j := range 10 {
			x, y := startX+step*float64(i), startY-step*float64(j)
			// aiohttp keeps the dict's order: max_iteration first.
			query := "max_iteration=" + pyFloat(maxIteration) + "&start_position_x=" + url.QueryEscape(pyFloat(x)) +
				"&start_position_y=" + url.QueryEscape(pyFloat(y)) + "&quantize_length=" + url.QueryEscape(pyFloat(step))
			if i == 0 && j == 0 && query != "max_iteration=30.0&start_position_x=-1.5&start_position_y=1.5&quantize_length=0.3" {
				t.Fatalf("the frontend's first request is %q", query)
			}
			img := getSeedTile(t, srv.URL+"/?"+query)
			n := 0
			for py := range 50 {
				for px := range 50 {
					cr := float64((float64(px)/50)*step) + x
					ci := y - float64((float64(py)/50)*step)
					o := img.PixOffset(px, py)
					isBlack := img.Pix[o]|img.Pix[o+1]|img.Pix[o+2] == 0
					if isBlack != seedBlack(maxIteration, cr, ci) {
						t.Fatalf("%s: pixel (%d,%d) black=%v, the seed's %v", query, px, py, isBlack, !isBlack)
					}
					if isBlack {
						n++
					}
				}
			}
			black += n
			if i == 2 && j == 4 {
				ours := getTileBlack(t, srv.URL+"/mandelbrot/tile?"+mandel.SeedTile(x, y, step, 30).Query().Encode())
				if n != 1977 || ours != 1962 {
					t.Errorf("tile (2,4): %d black pixels from the seed call, %d from /mandelbrot/tile; want 1977 and 1962", n, ours)
				}
			}
		}
	}
	t.Logf("seed view: %d black pixels of 250000", black)

	// Bad input: clear 400s naming the seed's parameter.
	for _, tc := range []struct{ query, field string }{
		{"max_iteration=abc&start_position_x=0&start_position_y=0&quantize_length=1", "max_iteration"},
		{"max_iteration=0.5&start_position_x=0&start_position_y=0&quantize_length=1", "max_iteration"},
		{"max_iteration=30.0&start_position_x=NaN&start_position_y=0&quantize_length=1", "start_position_x"},
		{"max_iteration=30.0&start_position_x=0&start_position_y=0", "quantize_length"},
		{"max_iteration=30.0&start_position_x=0&start_position_y=0&quantize_length=-1", "quantize_length"},
		{"max_iteration=30.0&start_position_x=0&start_position_y=0&quantize_length=1&colormap=unicorn", "colormap"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, err := http.Get(srv.URL + "/?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Error, Field string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusBadRequest || e.Field != tc.field || !strings.Contains(e.Error, tc.field) {
				t.Errorf("%s: %d %+v, want 400 naming %s", tc.query, resp.StatusCode, e, tc.field)
			}
		})
	}
}

func getSeedTile(t *testing.T, u string) *image.RGBA {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Image string }
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d", u, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(out.Image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mandel.DecodePNG(raw)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 50 || b.Dy() != 50 {
		t.Fatalf("%s: tile is %v, want 50x50", u, b)
	}
	return img
}

func getTileBlack(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: HTTP %d", u, resp.StatusCode)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mandel.DecodePNG(data)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := 0; k < len(img.Pix); k += 4 {
		if img.Pix[k]|img.Pix[k+1]|img.Pix[k+2] == 0 {
			n++
		}
	}
	return n
}
