package mandel

import (
	"context"
	"fmt"
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
// for tiles Validate(Limits{}) rejects (e.g. an unknown colour map), and
// when ctx ends before the render does: the workers check ctx every
// cancelRows rows and stop, and the error wraps ctx.Err().
func Render(ctx context.Context, t Tile, workers int) (*image.RGBA, error) {
	pal, err := checkRender(t)
	if err != nil {
		return nil, err
	}
	img := image.NewRGBA(image.Rect(0, 0, t.Width, t.Height))
	if err := renderInto(ctx, img, image.Point{}, t, pal, workers); err != nil {
		return nil, err
	}
	return img, nil
}

// RenderInto draws the tile into dst with its top-left pixel at at (in dst's
// coordinates), e.g. RenderInto(frameImg, ref.Rect().Min, ref.Tile, 0) to
// render a frame tile in place. The tile must lie inside dst.Bounds().
// Like Render it stops early when ctx ends (dst is then partly drawn).
func RenderInto(ctx context.Context, dst *image.RGBA, at image.Point, t Tile, workers int) error {
	pal, err := checkRender(t)
	if err != nil {
		return err
	}
	if !image.Rect(at.X, at.Y, at.X+t.Width, at.Y+t.Height).In(dst.Bounds()) {
		return invalid("tile", "tile %v placed at %v does not fit in the destination %v", t.Rect().Size(), at, dst.Bounds())
	}
	return renderInto(ctx, dst, at, t, pal, workers)
}

func renderInto(ctx context.Context, dst *image.RGBA, at image.Point, t Tile, pal *palette, workers int) error {
	return parallelRows(ctx, t.Height, workers, t.Width, func(py int, buf []float32) {
		iterRow(buf, &t, py)
		off := dst.PixOffset(at.X, at.Y+py)
		pal.colorRow(dst.Pix[off:off+4*t.Width], buf)
	})
}

// RenderIter computes the raw smooth iteration values of the tile, row-major
// (index py*Width+px), Inside (-1) for points of the set. Colorize turns them
// into the same pixels Render draws. It stops early when ctx ends.
func RenderIter(ctx context.Context, t Tile, workers int) ([]float32, error) {
	if _, err := checkRender(t); err != nil {
		return nil, err
	}
	out := make([]float32, t.Width*t.Height)
	err := parallelRows(ctx, t.Height, workers, 0, func(py int, _ []float32) {
		iterRow(out[py*t.Width:(py+1)*t.Width], &t, py)
	})
	if err != nil {
		return nil, err
	}
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
	pal.colorRow(img.Pix, iters)
	return img, nil
}

// RenderFrame renders a whole frame as one tile.
func RenderFrame(ctx context.Context, f Frame, workers int) (*image.RGBA, error) {
	return Render(ctx, f.Tile(), workers)
}

// cancelRows is how many rows a worker renders between two looks at the
// render's context (a cheap atomic load): a cancelled render stops once
// each worker's current row is done, which bounds the wasted work by the
// cost of one row per worker.
const cancelRows = 1

// parallelRows calls fn(y, buf) for every y in [0, h), handing rows out
// dynamically to workers goroutines (rows near the set cost far more than
// rows outside it). Each worker owns one scratch buffer of bufLen values.
// Every cancelRows rows a worker looks at ctx; once it has ended, no new
// row starts and parallelRows returns an error wrapping ctx.Err().
func parallelRows(ctx context.Context, h, workers, bufLen int, fn func(y int, buf []float32)) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(min(workers, h), 1)
	var next atomic.Int64
	var stopped atomic.Bool
	work := func() {
		buf := make([]float32, bufLen)
		for k := 0; ; k++ {
			if k%cancelRows == 0 && ctx.Err() != nil {
				stopped.Store(true)
				return
			}
			y := int(next.Add(1) - 1)
			if y >= h {
				return
			}
			fn(y, buf)
		}
	}
	if workers == 1 {
		work()
	} else {
		var wg sync.WaitGroup
		for range workers {
			wg.Go(work)
		}
		wg.Wait()
	}
	if stopped.Load() {
		return fmt.Errorf("mandel: render stopped: %w", ctx.Err())
	}
	return nil
}
