package mandel

import (
	"encoding/binary"
	"image/color"
	"math"
	"slices"
	"strings"
)

// PaletteSize is the number of precomputed entries in every colour map.
const PaletteSize = 1024

// ColorPeriod is how many (smooth) iterations one full cycle of a colour map
// spans. The smooth value is taken modulo this period, so any iteration count
// maps into the palette.
const ColorPeriod = 64

// entriesPerIter converts a smooth iteration value into palette entries.
const entriesPerIter = float64(PaletteSize) / ColorPeriod

// palette holds RGBA colours packed little-endian (R in the low byte), so
// one 32-bit store writes a pixel of image.RGBA.Pix.
type palette [PaletteSize]uint32

// stop is one control point of a cyclic gradient; pos in [0, 1), and the
// first stop of every gradient is at 0.
type stop struct {
	pos     float64
	r, g, b float64
}

// gradients lists the colour maps as cyclic control points; the gradient
// wraps from the last stop back to the first at pos 1.
var gradients = map[string][]stop{
	// Ultra Fractal's default gradient.
	"classic": {
		{0, 0, 7, 100},
		{0.16, 32, 107, 203},
		{0.42, 237, 255, 255},
		{0.6425, 255, 170, 0},
		{0.8575, 0, 2, 0},
	},
	"fire": {
		{0, 0, 0, 0},
		{0.18, 120, 0, 0},
		{0.34, 220, 40, 0},
		{0.5, 255, 170, 20},
		{0.62, 255, 250, 190},
		{0.78, 230, 90, 0},
		{0.9, 110, 0, 0},
	},
	"ocean": {
		{0, 0, 4, 32},
		{0.22, 0, 48, 120},
		{0.45, 0, 150, 190},
		{0.6, 170, 240, 250},
		{0.75, 20, 110, 160},
		{0.9, 0, 30, 80},
	},
	"grayscale": {
		{0, 0, 0, 0},
		{0.5, 255, 255, 255},
	},
	"rainbow": {
		{0, 255, 0, 0},
		{1.0 / 6, 255, 255, 0},
		{2.0 / 6, 0, 255, 0},
		{3.0 / 6, 0, 255, 255},
		{4.0 / 6, 0, 0, 255},
		{5.0 / 6, 255, 0, 255},
	},
}

var palettes = func() map[string]*palette {
	m := make(map[string]*palette, len(gradients))
	for name, stops := range gradients {
		m[name] = buildPalette(stops)
	}
	return m
}()

// Colormaps returns the names of the available colour maps, sorted.
func Colormaps() []string {
	names := make([]string, 0, len(palettes))
	for n := range palettes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Palette returns the PaletteSize colours of a colour map ("" means
// DefaultColormap), for legends and tests.
func Palette(name string) ([]color.RGBA, error) {
	p, err := lookupPalette(name)
	if err != nil {
		return nil, err
	}
	out := make([]color.RGBA, PaletteSize)
	for i, c := range p {
		out[i] = color.RGBA{uint8(c), uint8(c >> 8), uint8(c >> 16), uint8(c >> 24)}
	}
	return out, nil
}

func lookupPalette(name string) (*palette, error) {
	if name == "" {
		name = DefaultColormap
	}
	p, ok := palettes[name]
	if !ok {
		return nil, invalid("colormap", "unknown colour map %q (available: %s)", name, strings.Join(Colormaps(), ", "))
	}
	return p, nil
}

// buildPalette samples a cyclic monotone cubic (Fritsch–Carlson) through the
// stops, channel by channel, so the gradient is smooth without overshoot.
func buildPalette(stops []stop) *palette {
	n := len(stops)
	pos := make([]float64, n+1)
	for i, s := range stops {
		pos[i] = s.pos
	}
	pos[n] = 1
	var p palette
	for ch := range 3 {
		val := func(i int) float64 {
			s := stops[((i%n)+n)%n]
			return [3]float64{s.r, s.g, s.b}[ch]
		}
		// h(i) is the width of segment i (from stop i to stop i+1), cyclic.
		h := func(i int) float64 {
			i = ((i % n) + n) % n
			return pos[i+1] - pos[i]
		}
		d := func(i int) float64 { return (val(i+1) - val(i)) / h(i) }
		// Fritsch–Carlson tangents: zero at local extrema, else a weighted
		// harmonic mean of the neighbouring slopes (no overshoot).
		tangent := make([]float64, n)
		for i := range n {
			d0, d1 := d(i-1), d(i)
			if mul(d0, d1) <= 0 {
				continue
			}
			h0, h1 := h(i-1), h(i)
			w1, w2 := mul(2, h1)+h0, h1+mul(2, h0)
			tangent[i] = (w1 + w2) / (w1/d0 + w2/d1)
		}
		seg := 0
		for k := range PaletteSize {
			// All stops lists start at 0, so entry k is position k/PaletteSize.
			x := float64(k) / PaletteSize
			for x >= pos[seg+1] {
				seg++
			}
			hh := h(seg)
			u := (x - pos[seg]) / hh
			u2 := mul(u, u)
			u3 := mul(u2, u)
			// Cubic Hermite basis; mul rounds every product so the palette
			// is the same on every platform (no FMA fusion).
			h00 := mul(2, u3) - mul(3, u2) + 1
			h10 := u3 - mul(2, u2) + u
			h01 := mul(3, u2) - mul(2, u3)
			h11 := u3 - u2
			y := mul(h00, val(seg)) + mul(mul(h10, hh), tangent[seg]) +
				mul(h01, val(seg+1)) + mul(mul(h11, hh), tangent[(seg+1)%n])
			p[k] |= uint32(math.Round(min(255, max(0, y)))) << (8 * ch)
		}
	}
	for i := range p {
		p[i] |= 0xff << 24
	}
	return &p
}

// blackRGBA is the packed colour of points inside the set.
const blackRGBA uint32 = 0xff << 24

// color returns the packed colour of smooth iteration value nu. Negative,
// NaN or infinite values (Inside) are black. Any finite non-negative value
// is valid: nu*entriesPerIter is taken modulo the palette length, so no
// iteration count can index out of range.
func (p *palette) color(nu float32) uint32 {
	if !(nu >= 0) || nu > math.MaxFloat32 {
		return blackRGBA
	}
	pos := float64(nu) * entriesPerIter
	if pos >= 1<<62 { // beyond exact int64 range: reduce first (exact)
		pos = math.Mod(pos, PaletteSize)
	}
	return p[int64(pos)&(PaletteSize-1)]
}

// colorRow writes the packed colours of the smooth values nus to row
// (4 bytes each), as color does, without a branch on each value: whether a
// pixel is black (Inside, among others) follows no pattern a branch
// predictor can learn at the set's edge, where it cost more than the
// lookup. With AVX-512 most of the row is done 16 values at a time
// (colorRowVec).
func (p *palette) colorRow(row []byte, nus []float32) {
	row = row[:4*len(nus)]
	for i := colorRowVec(p, row, nus); i < len(nus); i++ {
		nu := nus[i]
		pos := float64(nu) * entriesPerIter
		if pos >= 1<<62 { // huge or +Inf: color's slow path (never in a render)
			binary.LittleEndian.PutUint32(row[4*i:], p.color(nu))
			continue
		}
		// For nu < 0 or NaN the index is garbage (int64 of a NaN or a
		// negative value is some value), masked into range and replaced.
		c := p[int64(pos)&(PaletteSize-1)]
		if !(nu >= 0) {
			c = blackRGBA
		}
		binary.LittleEndian.PutUint32(row[4*i:], c)
	}
}

// mul returns a*b rounded to float64: the explicit conversion forbids the
// compiler from fusing it into a following addition (FMA).
func mul(a, b float64) float64 { return float64(a * b) }
