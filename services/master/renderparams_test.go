package master_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestRenderAcceptsSeedNamesAndRefusesUnknownParameters: the seed's names
// draw the view they name (pixel-identical to the same view in our names),
// and a parameter the render does not know is a 400 naming it instead of
// the default picture with 200.
func TestRenderAcceptsSeedNamesAndRefusesUnknownParameters(t *testing.T) {
	c := startCluster(t, 1, nil)
	render := func(t *testing.T, query string) reply {
		t.Helper()
		return call(t, http.MethodGet, c.master+"/mandelbrot/render?"+query, "", nil, nil)
	}
	same := []struct{ name, seed, ours string }{
		{"seed defaults", "max_iteration=30.0&start_position_x=-1.5&start_position_y=1.5&quantize_length=3", ""},
		{"max_iteration alone", "max_iteration=200", "max_iter=200"},
		{"zoomed corner", "start_position_x=-1&start_position_y=0.5&quantize_length=0.5&width=200&height=100&max_iteration=50",
			"cx=-0.75&cy=0.375&scale=0.0025&width=200&height=100&max_iter=50"},
	}
	for _, tc := range same {
		t.Run(tc.name, func(t *testing.T) {
			a, b := render(t, tc.seed), render(t, tc.ours)
			if a.code != 200 || b.code != 200 {
				t.Fatalf("seed names: %d %s; ours: %d %s", a.code, a.body, b.code, b.body)
			}
			if !bytes.Equal(decodePNG(t, a.body).Pix, decodePNG(t, b.body).Pix) {
				t.Errorf("%q and %q draw different pictures", tc.seed, tc.ours)
			}
		})
	}
	bad := []struct{ query, field string }{
		{"max_iterations=30", "max_iterations"},
		{"zoom=2&cx=0", "zoom"},
		{"cx=0&center_y=1", "center_y"},
		{"max_iter=30&max_iteration=40", "max_iteration"},
		{"max_iteration=30.5", "max_iteration"},
		{"start_position_x=0&start_position_y=0", "quantize_length"},
		{"start_position_x=0&start_position_y=0&quantize_length=1&cx=1", "cx"},
		{"start_position_x=left&start_position_y=0&quantize_length=1", "start_position_x"},
	}
	for _, tc := range bad {
		t.Run(tc.query, func(t *testing.T) {
			for _, path := range []string{"/mandelbrot/render?", "/mandelbrot/stream?"} {
				r := call(t, http.MethodGet, c.master+path+tc.query, "", nil, nil)
				var e struct{ Error, Field string }
				_ = json.Unmarshal(r.body, &e)
				if r.code != http.StatusBadRequest || e.Field != tc.field || !strings.Contains(e.Error, tc.field) {
					t.Errorf("%s%s: %d %s, want 400 naming %s", path, tc.query, r.code, r.body, tc.field)
				}
			}
		})
	}
}
