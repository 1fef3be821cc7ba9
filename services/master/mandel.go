package master

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/mandel"
	"github.com/calclab/calclab/services/slaveclient"
)

// renderWorkers bounds the tiles of one render in flight or queued at once,
// so a huge frame cannot crowd calculator tasks out of the queue.
const renderWorkers = 16

// frameRequest is a parsed render request.
type frameRequest struct {
	frame  mandel.Frame
	policy balancer.Policy
	tile   int // tile side in pixels
	rows   int // /mandelbrot/render's band height in rows
}

func floatParam(q url.Values, name string, def float64) (float64, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		e := httpserve.Errorf(http.StatusBadRequest, "%s must be a finite number, got %q", name, v)
		e.Body.Field = name
		return 0, e
	}
	return f, nil
}

func intParam(q url.Values, name string, def int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e := httpserve.Errorf(http.StatusBadRequest, "%s must be an integer, got %q", name, v)
		e.Body.Field = name
		return 0, e
	}
	return n, nil
}

// parseFrame reads a render request. Defaults are the seed's picture:
// 500x500, 30 iterations, real axis -1.5..1.5.
func (s *Server) parseFrame(q url.Values) (frameRequest, error) {
	var (
		r   frameRequest
		err error
		f   = mandel.SeedFrame()
	)
	if q, err = canonicalRenderQuery(q); err != nil {
		return r, err
	}
	get := func(fn func() error) {
		if err == nil {
			err = fn()
		}
	}
	get(func() (e error) { f.Width, e = intParam(q, "width", f.Width); return })
	get(func() (e error) { f.Height, e = intParam(q, "height", f.Height); return })
	get(func() (e error) { f.CX, e = floatParam(q, "cx", f.CX); return })
	get(func() (e error) { f.CY, e = floatParam(q, "cy", f.CY); return })
	defScale := 3.0 / float64(max(f.Width, 1))
	get(func() (e error) { f.Scale, e = floatParam(q, "scale", defScale); return })
	get(func() (e error) { f.MaxIter, e = intParam(q, "max_iter", f.MaxIter); return })
	get(func() (e error) { r.tile, e = intParam(q, "tile", 0); return })
	if err != nil {
		return r, err
	}
	f.Colormap = q.Get("colormap")
	if f.Colormap == "" {
		f.Colormap = mandel.DefaultColormap
	}
	if _, perr := mandel.Palette(f.Colormap); perr != nil {
		e := httpserve.Errorf(http.StatusBadRequest, "colormap %q is not one of %v", f.Colormap, mandel.Colormaps())
		e.Body.Field = "colormap"
		return r, e
	}
	lim := mandel.Limits{MaxPixels: s.cfg.MandelMaxPixels, MaxIter: s.cfg.MandelMaxIter, MaxDim: 16384}
	if verr := f.Validate(lim); verr != nil {
		code := http.StatusBadRequest
		if errors.Is(verr, mandel.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		e := httpserve.Errorf(code, "%v", verr)
		var ve *mandel.ValidationError
		if errors.As(verr, &ve) {
			e.Body.Field = ve.Field
		}
		return r, e
	}
	if work := f.Work(); work > s.cfg.MandelMaxWork {
		e := httpserve.Errorf(http.StatusRequestEntityTooLarge,
			"render work width x height x max_iter = %d x %d x %d = %.3g iterations is over this master's limit of %.3g (--mandel-max-work): lower max_iter or the size",
			f.Width, f.Height, f.MaxIter, float64(work), float64(s.cfg.MandelMaxWork))
		e.Body.Field = "max_iter"
		return r, e
	}
	if r.tile != 0 && (r.tile < 16 || r.tile > 1024) {
		e := httpserve.Errorf(http.StatusBadRequest, "tile must be from 16 to 1024 pixels, got %d", r.tile)
		e.Body.Field = "tile"
		return r, e
	}
	if r.tile == 0 {
		r.tile = tileSide(f.Width * f.Height)
		r.rows = defaultBandRows(f.Width, f.Height)
	} else {
		r.rows = bandRows(r.tile, f.Width, f.Height)
	}
	if name := q.Get("policy"); name != "" {
		p, perr := balancer.New(name)
		if perr != nil {
			e := httpserve.Errorf(http.StatusBadRequest, "%v", perr)
			e.Body.Field = "policy"
			return r, e
		}
		r.policy = p
	}
	r.frame = f
	return r, nil
}

// reserveWork counts a render's work against the in-flight budget; the
// returned function gives it back. Over the budget: 503 with Retry-After.
func (s *Server) reserveWork(f mandel.Frame) (func(), error) {
	work := f.Work()
	for {
		cur := s.workInFlight.Load()
		if cur+work > s.cfg.MandelMaxWorkInFlight {
			e := httpserve.Errorf(http.StatusServiceUnavailable,
				"renders in flight already take %.3g of this master's %.3g iterations (--mandel-max-work-in-flight); this one needs %.3g: retry when they finish",
				float64(cur), float64(s.cfg.MandelMaxWorkInFlight), float64(work))
			e.RetryAfter = 2
			return nil, e
		}
		if s.workInFlight.CompareAndSwap(cur, cur+work) {
			return func() { s.workInFlight.Add(-work) }, nil
		}
	}
}

// tileSide picks the tile size for a frame: Mandelbrot tiles differ in cost
// by orders of magnitude, so a frame is cut into many more tiles than there
// are slaves (aiming at one tile per 32 Kpixel, 4..256 tiles; sides of
// 32..512 pixels, so very small or very large frames fall outside that
// range). Fewer, larger tiles measured faster on small frames (the seed's
// 500x500: 9 tiles in 14.0 ms against 16 in 15.2 ms), where per-tile
// round trips dominate.
func tileSide(pixels int) int {
	n := min(max(pixels/32768, 4), 256)
	side := int(math.Ceil(math.Sqrt(float64(pixels)/float64(n))/16)) * 16
	return min(max(side, 32), 512)
}

// bandRows is the height of the bands /mandelbrot/render cuts a frame into
// when the request names a tile side: whole rows of about the pixels of a
// tile x tile square (at least 1 row).
func bandRows(tile, width, height int) int {
	return min(max((tile*tile+width/2)/width, 1), height)
}

// bandPixels is about the size of /mandelbrot/render's default bands, with
// 8..256 bands a frame (defaultBandRows). Each band costs both ends a
// request (~150 us of CPU each); on the 4K bench frame bands of ~64 Kpixel
// (128 bands) measured faster than of ~37 Kpixel (216 bands): 432-433 ms
// against 465-481 ms, master / in-process 1.05-1.06x against 1.13-1.18x.
// Since the slaves compress their bands (format band), ~128 Kpixel (62
// bands) measured faster again: master / in-process 1.02-1.12x (median
// 1.06x) against 1.10-1.15x (median 1.12x) in six alternating pairs of
// bench-mandel runs; ~256 Kpixel (32 bands) gave 1.04x and 1.12x.
// Small frames are cut into at least 8 bands (tiny ones of 4 Kpixel or
// more each) so that every slot of the
// slaves gets one and encoding overlaps rendering: the seed's 500x500 view
// took 5.34-5.37 ms in 7 bands against 5.58-5.78 ms in 4.
const bandPixels = 1 << 17

// defaultBandRows is the band height for a frame whose request does not
// name a tile side.
func defaultBandRows(width, height int) int {
	px := width * height
	n := min(max(px/bandPixels, 8), 256, max(px/4096, 1)) // tiny frames: fewer bands
	return min(max((height+n-1)/n, 1), height)
}

// tileResult is one rendered tile.
type tileResult struct {
	ref      mandel.TileRef
	slave    string
	ms       float64 // wall time of the successful try, as the master saw it
	attempts int
	data     []byte // raw RGBA or PNG
}

// renderStats sums up a render per slave.
type renderStats = api.RenderStats

// slaveStats sums a render's tiles per slave.
type slaveStats map[string]*renderStats

func (m slaveStats) add(res tileResult) {
	st := m[res.slave]
	if st == nil {
		st = &renderStats{}
		m[res.slave] = st
	}
	st.Tiles++
	st.BusyMS += res.ms
}

// renderTiles dispatches every tile of the frame through the pool and calls
// emit (serialised) as each lands. It stops at the first tile that cannot be
// rendered, or when ctx ends (the client went away).
func (s *Server) renderTiles(ctx context.Context, r frameRequest, refs []mandel.TileRef, format string, emit func(tileResult)) error {
	accepted := time.Now() // each tile's time counts from its render's acceptance
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan mandel.TileRef)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	reqID := httpserve.RequestID(ctx)
	for range min(renderWorkers, len(refs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ref := range jobs {
				var res tileResult
				job := dispatch.Job{Class: dispatch.ClassTile, Policy: r.policy}
				tg, tries, err := s.pool.Run(ctx, job, func(ctx context.Context, tg dispatch.Target, _ int) error {
					start := time.Now()
					data, err := s.slaves.Tile(ctx, tg, ref.Tile, format, reqID)
					if err != nil {
						return err
					}
					res = tileResult{ref: ref, slave: tg.ID, ms: float64(time.Since(start).Microseconds()) / 1000, data: data}
					return nil
				})
				switch {
				case err == nil:
					s.pm.observe(kindTile, api.StatusCompleted, time.Since(accepted).Seconds())
				case tries > 0: // not a tile dropped unstarted when its render stopped
					s.pm.observe(kindTile, api.StatusFailed, time.Since(accepted).Seconds())
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("tile at (%d,%d): %w", ref.OX, ref.OY, err)
					}
					mu.Unlock()
					cancel()
					continue
				}
				res.slave, res.attempts = tg.ID, tries
				mu.Lock()
				if firstErr == nil {
					emit(res)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, ref := range refs {
		select {
		case jobs <- ref:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// renderError maps a failed render to a reply.
func renderError(err error) error {
	if errors.Is(err, dispatch.ErrJobFault) {
		return httpserve.Errorf(http.StatusUnprocessableEntity, "render failed: a tile is at fault, not the slaves (slower than the tile timeout on two slaves?): %v", err)
	}
	if dispatch.IsPermanent(err) {
		return httpserve.Errorf(http.StatusBadRequest, "%v", err)
	}
	return httpserve.Errorf(http.StatusServiceUnavailable, "render failed: %v", err)
}

// render serves GET /mandelbrot/render: the whole frame as one PNG.
func (s *Server) render(c *echo.Context) error {
	start := time.Now()
	r, err := s.parseFrame(c.QueryParams())
	if err != nil {
		return err
	}
	if err := s.admit(); err != nil {
		return admitError(err)
	}
	release, err := s.reserveWork(r.frame)
	if err != nil {
		return err
	}
	defer release()
	// The frame goes out in bands of whole rows that the slaves render and
	// compress themselves (format band): the master joins their PNG image
	// data in order as it lands (mandel.BandWriter), without pixels to
	// assemble or encode.
	var buf pngOut
	defer buf.release()
	bw, err := mandel.NewBandWriter(&buf, r.frame.Width, r.frame.Height)
	if err != nil {
		return fmt.Errorf("encode PNG: %w", err)
	}
	rows := r.rows
	refs := r.frame.Tiles(r.frame.Width, rows)
	landed := make([]tileResult, len(refs)) // bands in, waiting for those above
	next := 0                               // the first band not yet written
	var werr error
	stats := slaveStats{}
	err = s.renderTiles(c.Request().Context(), r, refs, slaveclient.FormatBand, func(res tileResult) {
		landed[res.ref.OY/rows] = res
		for ; next < len(landed) && landed[next].data != nil; next++ {
			if werr == nil {
				werr = bw.WriteBand(landed[next].data, landed[next].ref.Tile.Height)
			}
			landed[next].data = nil
		}
		stats.add(res)
	})
	if err != nil {
		if c.Request().Context().Err() != nil {
			s.log.Info("render abandoned by the client", "request_id", httpserve.RequestID(c.Request().Context()))
			return nil
		}
		return renderError(err)
	}
	if werr == nil {
		werr = bw.Close()
	}
	if werr != nil {
		return fmt.Errorf("encode PNG: %w", werr)
	}
	tiles := len(refs)
	s.renders.Inc()
	h := c.Response().Header()
	h.Set("X-Render-Tiles", strconv.Itoa(tiles))
	h.Set("X-Render-Ms", strconv.FormatFloat(float64(time.Since(start).Microseconds())/1000, 'f', 3, 64))
	h.Set("X-Render-Slaves", slaveSummary(stats))
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "image/png")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	c.Response().WriteHeader(http.StatusOK)
	_, err = buf.WriteTo(c.Response())
	return err
}

// pngChunk is the size of the pooled chunks pngOut writes into.
const pngChunk = 1 << 20

var pngChunks = sync.Pool{New: func() any {
	b := make([]byte, 0, pngChunk)
	return &b
}}

// pngOut collects a PNG in pooled chunks: a bytes.Buffer grown to a 4K
// frame's 12 MiB reallocates, copies and zeroes it several times over
// (measured 35% of the master's CPU on that frame).
type pngOut struct {
	chunks []*[]byte
	n      int
}

func (o *pngOut) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if len(o.chunks) == 0 || len(*o.chunks[len(o.chunks)-1]) == pngChunk {
			o.chunks = append(o.chunks, pngChunks.Get().(*[]byte))
		}
		c := o.chunks[len(o.chunks)-1]
		k := copy((*c)[len(*c):pngChunk], p)
		*c = (*c)[:len(*c)+k]
		p = p[k:]
	}
	o.n += n
	return n, nil
}

// Len is the number of bytes written.
func (o *pngOut) Len() int { return o.n }

// WriteTo writes the bytes collected to w.
func (o *pngOut) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for _, c := range o.chunks {
		k, err := w.Write(*c)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// release gives the chunks back to the pool.
func (o *pngOut) release() {
	for _, c := range o.chunks {
		*c = (*c)[:0]
		pngChunks.Put(c)
	}
	o.chunks, o.n = nil, 0
}

func slaveSummary(stats slaveStats) string {
	ids := make([]string, 0, len(stats))
	for id := range stats {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var b bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", id, stats[id].Tiles)
	}
	return b.String()
}

// writeEvent writes one Server-Sent Event; its data is one of the api.Stream
// types.
func writeEvent(w io.Writer, event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	return err
}

// stream serves GET /mandelbrot/stream: the same render as Server-Sent
// Events. "start" gives the frame and tile grid, one "tile" event per tile
// as it lands (position, size, slave, time, base64 PNG), then "done" with
// per-slave totals, or "error".
func (s *Server) stream(c *echo.Context) error {
	start := time.Now()
	r, err := s.parseFrame(c.QueryParams())
	if err != nil {
		return err
	}
	if err := s.admit(); err != nil {
		return admitError(err)
	}
	release, err := s.reserveWork(r.frame)
	if err != nil {
		return err
	}
	defer release()
	w := c.Response()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	refs := r.frame.Tiles(r.tile, r.tile)
	_ = writeEvent(w, api.EventStart, api.StreamStart{
		Width: r.frame.Width, Height: r.frame.Height, Tiles: len(refs), Tile: r.tile,
		CX: r.frame.CX, CY: r.frame.CY, Scale: r.frame.Scale, MaxIter: r.frame.MaxIter, Colormap: r.frame.Colormap,
	})
	_ = rc.Flush()
	stats := slaveStats{}
	n := 0
	err = s.renderTiles(c.Request().Context(), r, refs, "png", func(res tileResult) {
		stats.add(res)
		n++
		_ = writeEvent(w, api.EventTile, api.StreamTile{
			N: n, OX: res.ref.OX, OY: res.ref.OY, W: res.ref.Tile.Width, H: res.ref.Tile.Height,
			Slave: res.slave, MS: res.ms, Attempts: res.attempts,
			PNG: base64.StdEncoding.EncodeToString(res.data),
		})
		_ = rc.Flush()
	})
	if err != nil {
		if c.Request().Context().Err() != nil {
			s.log.Info("render stream abandoned by the client", "request_id", httpserve.RequestID(c.Request().Context()))
			return nil
		}
		_ = writeEvent(w, api.EventError, api.StreamError{Error: err.Error()})
		_ = rc.Flush()
		return nil
	}
	s.renders.Inc()
	_ = writeEvent(w, api.EventDone, api.StreamDone{
		Tiles: n, MS: float64(time.Since(start).Microseconds()) / 1000, Slaves: stats,
	})
	_ = rc.Flush()
	return nil
}
