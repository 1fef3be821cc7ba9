package mandel

import (
	"image"
	"math"
)

// Seed worker contract: a seed tile is SeedTileSize x SeedTileSize pixels.
const SeedTileSize = 50

// DefaultColormap is used when a Tile or Frame leaves Colormap empty.
const DefaultColormap = "classic"

// Tile describes one rectangle of pixels to render. See the package
// documentation for the geometry: pixel (px, py) of the tile is sampled at
// c = (X0 + (OX+px)*Step, Y0 - (OY+py)*Step).
type Tile struct {
	// X0, Y0 is the complex value at pixel (0, 0) of the frame the tile
	// belongs to (for a stand-alone tile with OX = OY = 0, its own top-left
	// pixel).
	X0 float64 `json:"x0"`
	Y0 float64 `json:"y0"`
	// Step is the pixel pitch in complex units; must be > 0.
	Step float64 `json:"step"`
	// OX, OY is the tile's pixel offset inside the frame.
	OX int `json:"ox"`
	OY int `json:"oy"`
	// Width, Height is the tile size in pixels.
	Width  int `json:"width"`
	Height int `json:"height"`
	// MaxIter is the iteration budget: a point whose orbit has not left the
	// radius-2 disc after MaxIter iterations is drawn black (inside).
	MaxIter int `json:"max_iter"`
	// Colormap names the colour map (see Colormaps); "" means
	// DefaultColormap.
	Colormap string `json:"colormap,omitempty"`
}

// SeedTile builds the tile the seed worker rendered for
// GET /?max_iteration=M&start_position_x=X&start_position_y=Y&quantize_length=L:
// 50x50 pixels, pixel (x, y) sampled at (X + x*L/50, Y - y*L/50).
func SeedTile(startX, startY, length float64, maxIter int) Tile {
	return Tile{
		X0:      startX,
		Y0:      startY,
		Step:    length / SeedTileSize,
		Width:   SeedTileSize,
		Height:  SeedTileSize,
		MaxIter: maxIter,
	}
}

// Coord returns the complex value sampled for tile pixel (px, py). It is the
// exact expression the renderer uses.
func (t Tile) Coord(px, py int) (re, im float64) {
	return coordRe(t.X0, t.Step, t.OX+px), coordIm(t.Y0, t.Step, t.OY+py)
}

// Rect is the tile's rectangle in frame pixel coordinates.
func (t Tile) Rect() image.Rectangle {
	return image.Rect(t.OX, t.OY, t.OX+t.Width, t.OY+t.Height)
}

// coordRe and coordIm are the only places pixel coordinates are computed.
// The explicit float64 conversion forbids fusing the multiply and the add
// into an FMA (Go spec, "Floating-point operators"), so the result is the same
// on every architecture and GOAMD64 level.
func coordRe(x0, step float64, i int) float64 { return x0 + float64(float64(i)*step) }
func coordIm(y0, step float64, i int) float64 { return y0 - float64(float64(i)*step) }

// Frame is a whole picture, described by its centre and pixel pitch.
type Frame struct {
	CX float64 `json:"cx"`
	CY float64 `json:"cy"`
	// Scale is the pixel pitch in complex units per pixel; must be > 0.
	Scale    float64 `json:"scale"`
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	MaxIter  int     `json:"max_iter"`
	Colormap string  `json:"colormap,omitempty"`
}

// SeedFrame is the seed project's default picture: 500x500 pixels, 30
// iterations, real part from -1.5 to 1.5 (Scale 3/500, centre 0).
func SeedFrame() Frame {
	return Frame{Scale: 3.0 / 500, Width: 500, Height: 500, MaxIter: 30}
}

// Work is the frame's worst-case cost in iterations: width x height x
// max_iter (every pixel iterating to max_iter), for admission budgets.
// Non-positive dimensions count as 0.
func (f Frame) Work() int64 {
	return int64(max(f.Width, 0)) * int64(max(f.Height, 0)) * int64(max(f.MaxIter, 0))
}

// Origin returns the complex value sampled at frame pixel (0, 0):
// (CX - Width/2*Scale, CY + Height/2*Scale).
func (f Frame) Origin() (x0, y0 float64) {
	x0 = f.CX - float64(float64(f.Width)/2*f.Scale)
	y0 = f.CY + float64(float64(f.Height)/2*f.Scale)
	return x0, y0
}

// Tile returns the whole frame as a single tile.
func (f Frame) Tile() Tile {
	x0, y0 := f.Origin()
	return Tile{
		X0: x0, Y0: y0, Step: f.Scale,
		Width: f.Width, Height: f.Height,
		MaxIter: f.MaxIter, Colormap: f.Colormap,
	}
}

// TileRef is one tile of a frame: its pixel offset in the frame (equal to
// Tile.OX, Tile.OY) and the tile to render.
type TileRef struct {
	OX   int  `json:"ox"`
	OY   int  `json:"oy"`
	Tile Tile `json:"tile"`
}

// Rect is the tile's rectangle in frame pixel coordinates.
func (r TileRef) Rect() image.Rectangle { return r.Tile.Rect() }

// Tiles splits the frame into tiles of tileW x tileH pixels, row by row from
// the top-left. Tiles on the right and bottom edges are smaller when the
// frame size is not a multiple of the tile size. A non-positive tileW or
// tileH means the full frame width or height. A frame with no pixels has no
// tiles.
func (f Frame) Tiles(tileW, tileH int) []TileRef {
	if f.Width <= 0 || f.Height <= 0 {
		return nil
	}
	if tileW <= 0 || tileW > f.Width {
		tileW = f.Width
	}
	if tileH <= 0 || tileH > f.Height {
		tileH = f.Height
	}
	base := f.Tile()
	nx := (f.Width + tileW - 1) / tileW
	ny := (f.Height + tileH - 1) / tileH
	refs := make([]TileRef, 0, nx*ny)
	for oy := 0; oy < f.Height; oy += tileH {
		for ox := 0; ox < f.Width; ox += tileW {
			t := base
			t.OX, t.OY = ox, oy
			t.Width = min(tileW, f.Width-ox)
			t.Height = min(tileH, f.Height-oy)
			refs = append(refs, TileRef{OX: ox, OY: oy, Tile: t})
		}
	}
	return refs
}

func finite(v float64) bool { return !math.IsInf(v, 0) && !math.IsNaN(v) }
