package master

import "testing"

func TestDefaultBandRows(t *testing.T) {
	for _, tc := range []struct{ w, h, rows, bands int }{
		{500, 500, 63, 8},    // the seed's view
		{3840, 2160, 35, 62}, // the bench's 4K frame
		{10, 10, 10, 1},
		{100, 100, 50, 2},
		{16384, 16384, 64, 256},
		{20000, 1, 1, 1},
	} {
		rows := defaultBandRows(tc.w, tc.h)
		if bands := (tc.h + rows - 1) / rows; rows != tc.rows || bands != tc.bands {
			t.Errorf("%dx%d: bands of %d rows (%d bands), want %d rows (%d bands)", tc.w, tc.h, rows, bands, tc.rows, tc.bands)
		}
	}
}
