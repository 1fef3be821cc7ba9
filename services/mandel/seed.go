package mandel

import (
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"net/url"
)

// SeedRequest is the seed worker's one call,
// GET /?max_iteration=M&start_position_x=X&start_position_y=Y&quantize_length=L,
// as the seed's frontend sends it (every value a float: max_iteration=30.0).
//
// It keeps the seed's semantics exactly, which differ from a Tile's:
//   - pixel (x, y) of the 50x50 tile is sampled at the seed's expression
//     (x/50)*L + X, Y - (y/50)*L (not X0 + x*Step: the roundings differ);
//   - the seed counts iteration = 1, 2, ... while iteration < M, tests
//     sqrt(zr²+zi²) > 2 before each step, and the first test is on z = 0: it
//     tests z_1 .. z_k for the integers k < M-1, two fewer escape checks than
//     M says (M = 30 checks 28 times; a Tile with max_iter 30 checks 30), so
//     its black area (points that never escaped) is larger than ours;
//   - sqrt(r2) > 2 is r2 > 4 + 2^-49 in float64, not r2 > 4.
//
// Points that escape are coloured with the colour map by their smooth value
// (the seed's colours came from a random table), points that do not are
// black, like the seed's.
type SeedRequest struct {
	MaxIteration float64 // M
	StartX       float64 // X, the tile's left edge
	StartY       float64 // Y, the tile's top edge
	Length       float64 // L, the tile's side in complex units
	Colormap     string  // optional; "" is DefaultColormap
}

// SeedRequestFromQuery parses the seed call's parameters (all four
// required, floats as the seed's frontend sends them) and checks them
// against lim (lim.MaxIter bounds max_iteration). Errors are
// *ValidationError naming the seed's parameter.
func SeedRequestFromQuery(q url.Values, lim Limits) (SeedRequest, error) {
	p := queryParser{q: q}
	r := SeedRequest{
		MaxIteration: p.float("max_iteration", true),
		StartX:       p.float("start_position_x", true),
		StartY:       p.float("start_position_y", true),
		Length:       p.float("quantize_length", true),
		Colormap:     q.Get("colormap"),
	}
	if p.err != nil {
		return r, p.err
	}
	switch {
	case r.MaxIteration < 1:
		return r, invalid("max_iteration", "must be at least 1 (got %g)", r.MaxIteration)
	case lim.MaxIter > 0 && r.MaxIteration > float64(lim.MaxIter):
		return r, tooLarge("max_iteration", "%g is over this server's limit of %d", r.MaxIteration, lim.MaxIter)
	case !(r.Length > 0):
		return r, invalid("quantize_length", "must be greater than 0 (got %g)", r.Length)
	}
	if _, err := lookupPalette(r.Colormap); err != nil {
		return r, err
	}
	return r, nil
}

// seedEscape2 is the largest float64 whose correctly rounded square root is
// 2: the seed's sqrt(r2) > 2 is exactly r2 > seedEscape2.
var seedEscape2 = math.Nextafter(math.Nextafter(4, 5), 5)

// SeedIteration returns what the seed worker's mandelbrot(M, cr, ci) returns
// for one point: the iteration at which it saw |z| > 2, or M (drawn black).
func SeedIteration(maxIteration, cr, ci float64) float64 {
	it, _, _ := seedOrbit(maxIteration, cr, ci)
	return it
}

// seedOrbit runs the seed's loop and also returns z at its escape test.
func seedOrbit(maxIteration, cr, ci float64) (it, zr, zi float64) {
	for it = 1; it < maxIteration; it++ {
		if it != 1 {
			zr, zi = float64(zr*zr)-float64(zi*zi)+cr, float64(2*zr*zi)+ci
		}
		if math.Sqrt(float64(zr*zr)+float64(zi*zi)) > 2 {
			return it, zr, zi
		}
	}
	return maxIteration, zr, zi
}

// RenderSeed draws the seed call's 50x50 tile (see SeedRequest) into a new
// RGBA image. It fails for a colour map Colormaps does not list, or when
// ctx ends first.
func RenderSeed(ctx context.Context, r SeedRequest) (*image.RGBA, error) {
	pal, err := lookupPalette(r.Colormap)
	if err != nil {
		return nil, err
	}
	const n = SeedTileSize
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("mandel: render stopped: %w", err)
		}
		ci := r.StartY - float64((float64(y)/n)*r.Length)
		for x := range n {
			cr := float64((float64(x)/n)*r.Length) + r.StartX
			nu := Inside
			if it, zr, zi := seedOrbit(r.MaxIteration, cr, ci); it != r.MaxIteration {
				// z_(it-1) is outside radius 2: the smooth value from there.
				nu = escapeValue(cr, ci, zr, zi, float64(zr*zr), float64(zi*zi), int(it)-1)
			}
			binary.LittleEndian.PutUint32(img.Pix[4*(y*n+x):], pal.color(nu))
		}
	}
	return img, nil
}
