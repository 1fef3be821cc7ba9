package master

import (
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/calclab/calclab/services/httpserve"
)

// renderParams are the query parameters of /mandelbrot/render and
// /mandelbrot/stream.
var renderParams = []string{"width", "height", "cx", "cy", "scale", "max_iter", "tile", "colormap", "policy"}

// seedRenderParams are the seed's names, accepted as aliases: the seed's
// frontend described its view by its top-left corner and side length.
//
//	max_iteration=M                  max_iter=M (an integral number: 30.0 is 30; our
//	                                 meaning of max_iter, not the seed worker's count)
//	start_position_x=X, start_position_y=Y, quantize_length=L (all three)
//	                                 scale=L/width, cx=X+width/2*scale, cy=Y-height/2*scale:
//	                                 the view whose top-left corner is (X, Y) and whose
//	                                 width is L (the seed's 500x500 is L x L)
var seedRenderParams = []string{"max_iteration", "start_position_x", "start_position_y", "quantize_length"}

// paramError is a 400 naming the parameter.
func paramError(field, format string, args ...any) error {
	e := httpserve.Errorf(http.StatusBadRequest, format, args...)
	e.Body.Field = field
	return e
}

// canonicalRenderQuery refuses parameters a render does not know (naming
// them) and rewrites the seed's names into ours, refusing a request that
// gives both names for one thing.
func canonicalRenderQuery(q url.Values) (url.Values, error) {
	var unknown []string
	for name := range q {
		if !slices.Contains(renderParams, name) && !slices.Contains(seedRenderParams, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, paramError(unknown[0], "unknown parameter %s: a render takes %s (or the seed's %s)",
			strings.Join(quoteAll(unknown), ", "), strings.Join(renderParams, ", "), strings.Join(seedRenderParams, ", "))
	}
	has := func(name string) bool { return strings.TrimSpace(q.Get(name)) != "" }
	seen := slices.ContainsFunc(seedRenderParams, has)
	if !seen {
		return q, nil
	}
	out := url.Values{}
	for k, v := range q {
		out[k] = v
	}
	if has("max_iteration") {
		if has("max_iter") {
			return nil, paramError("max_iteration", "give max_iter or its alias max_iteration, not both")
		}
		s := strings.TrimSpace(q.Get("max_iteration"))
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return nil, paramError("max_iteration", "max_iteration must be a whole number (30 or 30.0), got %q", s)
		}
		out.Set("max_iter", strconv.FormatInt(int64(f), 10))
		out.Del("max_iteration")
	}
	corner := []string{"start_position_x", "start_position_y", "quantize_length"}
	if slices.ContainsFunc(corner, has) {
		for _, name := range corner {
			if !has(name) {
				return nil, paramError(name, "%s is missing: the seed's view needs start_position_x, start_position_y and quantize_length together", name)
			}
		}
		for _, ours := range []string{"cx", "cy", "scale"} {
			if has(ours) {
				return nil, paramError(ours, "give %s or the seed's start_position_x/start_position_y/quantize_length, not both", ours)
			}
		}
		v := map[string]float64{}
		for _, name := range corner {
			s := strings.TrimSpace(q.Get(name))
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, paramError(name, "%s must be a finite number, got %q", name, s)
			}
			v[name] = f
			out.Del(name)
		}
		width, height := 500, 500 // the seed's view, as parseFrame's defaults
		for _, d := range []struct {
			name string
			p    *int
		}{{"width", &width}, {"height", &height}} {
			if s := q.Get(d.name); s != "" {
				n, err := strconv.Atoi(s)
				if err != nil || n < 1 {
					return nil, paramError(d.name, "%s must be a positive integer, got %q", d.name, s)
				}
				*d.p = n
			}
		}
		scale := v["quantize_length"] / float64(width)
		f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
		out.Set("scale", f(scale))
		out.Set("cx", f(v["start_position_x"]+float64(width)/2*scale))
		out.Set("cy", f(v["start_position_y"]-float64(height)/2*scale))
	}
	return out, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strconv.Quote(v)
	}
	return out
}
