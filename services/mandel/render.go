package mandel

import (
	"encoding/binary"
	"image"
	"runtime"
	"sync"
	"sync/atomic"
)

// checkRender rejects tiles the renderer cannot draw at all (no limits
// beyond HardMaxPixels; callers apply their own Limits with Validate).
func checkRender(t Tile) (*palette, error) {
	if err := t.Validate(Limits{}); err != nil {
		return nil, err
	}
	return lookupPalette(t.Colormap)
}

// Render draws the tile into a new t.Width x t.Height RGBA image (bounds
// start at 0,0), splitting rows across workers goroutines (<= 0 means
// runtime.GOMAXPROCS(0)). The result does not depend on workers. It fails
// only for tiles Validate(Limits{}) rejects (e.g. an unknown colour map).
func Render(t Tile, workers int) (*image.RGBA, error) {
	pal, err := checkRender(t)
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, t.Width, t.Height))
	renderInto(img, image.Point{}, t, pal, workers)
	return img, nil
}

// RenderInto draws the tile into dst with its top-left pixel at at (in dst's
// coordinates), e.g. RenderInto(frameImg, ref.Rect().Min, ref.Tile, 0) to
// render a frame tile in place. The tile must lie inside dst.Bounds().
func RenderInto(dst *image.RGBA, at image.Point, t Tile, workers int) error {
	pal, err := checkRender(t)
	if err != nil {
		return err
	}
	if !image.Rect(at.X, at.Y, at.X+t.Width, at.Y+t.Height).In(dst.Bounds()) {
		return invalid("tile", "tile %v placed at %v does not fit in the destination %v", t.Rect().Size(), at, dst.Bounds())
	}
	renderInto(dst, at, t, pal, workers)
	return nil
}

func renderInto(dst *image.RGBA, at image.Point, t Tile, pal *palette, workers int) {
	parallelRows(t.Height, workers, t.Width, func(py int, buf []float32) {
		iterRow(buf, &t, py)
		off := dst.PixOffset(at.X, at.Y+py)
		row := dst.Pix[off : off+4*t.Width : off+4*t.Width]
		for px, nu := range buf {
			binary.LittleEndian.PutUint32(row[4*px:], pal.color(nu))
		}
	})
}

// RenderIter computes the raw smooth iteration values of the tile, row-major
// (index py*Width+px), Inside (-1) for points of the set. Colorize turns them
// into the same pixels Render draws.
func RenderIter(t Tile, workers int) ([]float32, error) {
	if _, err := checkRender(t); err != nil {
		return nil, err
	}
	out := make([]float32, t.Width*t.Height)
	parallelRows(t.Height, workers, 0, func(py int, _ []float32) {
		iterRow(out[py*t.Width:(py+1)*t.Width], &t, py)
	})
	return out, nil
}

// Colorize converts smooth values (as returned by RenderIter, row-major
// width x height) into an RGBA image with the named colour map. Negative,
// NaN or infinite values are drawn black; any other value is valid.
func Colorize(iters []float32, width, height int, colormap string) (*image.RGBA, error) {
	pal, err := lookupPalette(colormap)
	if err != nil {
		return nil, err
	}
	if width < 0 || height < 0 || len(iters) != width*height {
		return nil, invalid("iters", "have %d values, want width*height = %d*%d", len(iters), width, height)
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for i, nu := range iters {
		binary.LittleEndian.PutUint32(img.Pix[4*i:], pal.color(nu))
	}
	return img, nil
}

// RenderFrame renders a whole frame as one tile.
func RenderFrame(f Frame, workers int) (*image.RGBA, error) {
	return Render(f.Tile(), workers)
}

// parallelRows calls fn(y, buf) for every y in [0, h), handing rows out
// dynamically to workers goroutines (rows near the set cost far more than
// rows outside it). Each worker owns one scratch buffer of bufLen values.
func parallelRows(h, workers, bufLen int, fn func(y int, buf []float32)) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, h)
	if workers <= 1 {
		buf := make([]float32, bufLen)
		for y := range h {
			fn(y, buf)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]float32, bufLen)
			for {
				y := int(next.Add(1) - 1)
				if y >= h {
					return
				}
				fn(y, buf)
			}
		})
	}
	wg.Wait()
}
