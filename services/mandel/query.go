package mandel

import (
	"net/url"
	"strconv"
	"strings"
)

// Query encodes the tile as URL query parameters (x0, y0, step, ox, oy,
// width, height, max_iter, colormap). Floats are written in the shortest
// form that parses back to the same bits, so TileFromQuery(t.Query())
// renders exactly the pixels t does.
func (t Tile) Query() url.Values {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	v := url.Values{}
	v.Set("x0", f(t.X0))
	v.Set("y0", f(t.Y0))
	v.Set("step", f(t.Step))
	v.Set("ox", strconv.Itoa(t.OX))
	v.Set("oy", strconv.Itoa(t.OY))
	v.Set("width", strconv.Itoa(t.Width))
	v.Set("height", strconv.Itoa(t.Height))
	v.Set("max_iter", strconv.Itoa(t.MaxIter))
	if t.Colormap != "" {
		v.Set("colormap", t.Colormap)
	}
	return v
}

// TileFromQuery parses a tile from URL query parameters. Two forms are
// accepted:
//
//   - the seed worker's: start_position_x, start_position_y,
//     quantize_length, max_iteration (a 50x50 SeedTile);
//   - Tile.Query's: x0, y0, step, width, height, max_iter (required), ox, oy
//     (default 0). max_iteration is accepted for max_iter.
//
// colormap is optional in both. Only syntax is checked here: call Validate
// for ranges and limits. Errors are *ValidationError naming the parameter.
func TileFromQuery(q url.Values) (Tile, error) {
	p := queryParser{q: q}
	if q.Has("start_position_x") {
		t := SeedTile(
			p.float("start_position_x", true),
			p.float("start_position_y", true),
			p.float("quantize_length", true),
			p.int("max_iteration", true, 0),
		)
		t.Colormap = q.Get("colormap")
		return t, p.err
	}
	iterName := "max_iter"
	if !q.Has(iterName) && q.Has("max_iteration") {
		iterName = "max_iteration"
	}
	t := Tile{
		X0:       p.float("x0", true),
		Y0:       p.float("y0", true),
		Step:     p.float("step", true),
		OX:       p.int("ox", false, 0),
		OY:       p.int("oy", false, 0),
		Width:    p.int("width", true, 0),
		Height:   p.int("height", true, 0),
		MaxIter:  p.int(iterName, true, 0),
		Colormap: q.Get("colormap"),
	}
	return t, p.err
}

// queryParser keeps the first error, so fields can be parsed in one
// expression.
type queryParser struct {
	q   url.Values
	err error
}

func (p *queryParser) raw(name string, required bool) (string, bool) {
	if p.err != nil {
		return "", false
	}
	s := strings.TrimSpace(p.q.Get(name))
	if s == "" {
		if required {
			p.err = invalid(name, "missing query parameter")
		}
		return "", false
	}
	return s, true
}

func (p *queryParser) float(name string, required bool) float64 {
	s, ok := p.raw(name, required)
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || !finite(v) {
		p.err = invalid(name, "must be a finite number (got %q)", s)
		return 0
	}
	return v
}

func (p *queryParser) int(name string, required bool, def int) int {
	s, ok := p.raw(name, required)
	if !ok {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		p.err = invalid(name, "must be an integer (got %q)", s)
		return def
	}
	return v
}
