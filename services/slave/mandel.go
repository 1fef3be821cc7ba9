package slave

import (
	"bytes"
	"encoding/base64"
	"errors"
	"image"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/mandel"
)

// Tile formats of GET /mandelbrot/tile.
const (
	FormatPNG = "png"
	// FormatRaw is the tile's RGBA bytes, row by row (4*width*height bytes):
	// what the master assembles frames from, with no PNG round trip.
	FormatRaw = "raw"
	// FormatBand is the tile's rows as PNG image data (mandel.AppendBand:
	// filtered, deflated, with their Adler-32), for a tile of whole frame
	// rows: the master joins such bands into the frame's PNG
	// (mandel.BandWriter) without decompressing or re-encoding them.
	FormatBand = "band"
)

// HeaderRenderMS carries the slave's render time of a tile, in ms.
const HeaderRenderMS = "X-Render-Ms"

// HeaderSlave names the slave that rendered a tile.
const HeaderSlave = "X-Slave"

// mandelError maps a mandel validation error to 400 or 413.
func mandelError(err error) error {
	code := http.StatusBadRequest
	if errors.Is(err, mandel.ErrTooLarge) {
		code = http.StatusRequestEntityTooLarge
	}
	e := httpserve.Errorf(code, "%v", err)
	var ve *mandel.ValidationError
	if errors.As(err, &ve) {
		e.Body.Field = ve.Field
	}
	return e
}

// bytePool holds byte buffers: a tile's pixels and its encoded reply are
// dropped once the reply is written, and fresh buffers each time were
// allocated, zeroed and collected for every tile.
type bytePool struct{ p sync.Pool }

// get returns a pooled buffer of length n (not zeroed). Hand it back with
// put, with *b set to the buffer if it grew.
func (bp *bytePool) get(n int) *[]byte {
	b, _ := bp.p.Get().(*[]byte)
	if b == nil || cap(*b) < n {
		s := make([]byte, n)
		b = &s
	}
	*b = (*b)[:n]
	return b
}

func (bp *bytePool) put(b *[]byte) { bp.p.Put(b) }

// pixBufs holds tiles' RGBA pixels, outBufs their encoded replies.
var pixBufs, outBufs bytePool

// renderWorkers is how many goroutines a render that holds a slot uses:
// the slave's cores shared among the slots taken. A lone render uses every
// core; with every slot taken (capacity is NumCPU by default) each render
// runs on one, instead of GOMAXPROCS goroutines per render all competing
// for the same cores.
func (s *Slave) renderWorkers() int {
	return max(1, runtime.GOMAXPROCS(0)/max(1, len(s.sem)))
}

// renderTile validates and renders one tile in an evaluation slot into a
// pooled buffer; the caller calls done when it no longer needs the pixels.
func (s *Slave) renderTile(c *echo.Context) (t mandel.Tile, pix []byte, took time.Duration, done func(), err error) {
	t, err = mandel.TileFromQuery(c.QueryParams())
	if err == nil {
		err = t.Validate(s.cfg.MandelLimits)
	}
	if err != nil {
		return t, nil, 0, nil, mandelError(err)
	}
	release, err := s.acquire(c.Request().Context())
	if err != nil {
		return t, nil, 0, nil, err
	}
	defer release()
	start := time.Now()
	pb := pixBufs.get(4 * t.Width * t.Height)
	pix, done = *pb, func() { pixBufs.put(pb) }
	err = mandel.RenderInto(c.Request().Context(), rgba(pix, t.Width, t.Height), image.Point{}, t, s.renderWorkers())
	if err != nil {
		done()
		if ctxErr := c.Request().Context().Err(); ctxErr != nil { // caller gone or gave up
			return t, nil, 0, nil, httpserve.Errorf(http.StatusServiceUnavailable, "render stopped: %v", ctxErr)
		}
		return t, nil, 0, nil, mandelError(err)
	}
	s.done.Add(1)
	s.tiles.Inc()
	return t, pix, time.Since(start), done, nil
}

// tile serves GET /mandelbrot/tile: one tile as PNG (default) or raw RGBA.
func (s *Slave) tile(c *echo.Context) error {
	format := c.QueryParam("format")
	if format == "" {
		format = FormatPNG
	}
	if format != FormatPNG && format != FormatRaw && format != FormatBand {
		e := httpserve.Errorf(http.StatusBadRequest, "format must be png, raw or band, got %q", format)
		e.Body.Field = "format"
		return e
	}
	t, pix, took, done, err := s.renderTile(c)
	if err != nil {
		return err
	}
	defer done()
	h := c.Response().Header()
	h.Set(HeaderRenderMS, strconv.FormatFloat(float64(took.Microseconds())/1000, 'f', 3, 64))
	h.Set(HeaderSlave, s.ID())
	if format == FormatRaw {
		h.Set("X-Tile-Width", strconv.Itoa(t.Width))
		h.Set("X-Tile-Height", strconv.Itoa(t.Height))
		// Content-Length lets the master read the tile into one buffer of
		// the right size (without it the body is chunked).
		c.Response().Header().Set("Content-Length", strconv.Itoa(len(pix)))
		return c.Blob(http.StatusOK, "application/octet-stream", pix)
	}
	ob := outBufs.get(0)
	defer outBufs.put(ob)
	out := *ob
	var ctype string
	if format == FormatBand {
		out, err = mandel.AppendBand(out, pix, t.Width, t.Height)
		ctype = "application/octet-stream"
	} else {
		buf := bytes.NewBuffer(out)
		err = mandel.EncodePNG(buf, rgba(pix, t.Width, t.Height))
		out, ctype = buf.Bytes(), "image/png"
	}
	*ob = out[:0]
	if err != nil {
		return err
	}
	c.Response().Header().Set("Content-Length", strconv.Itoa(len(out)))
	return c.Blob(http.StatusOK, ctype, out)
}

// seedTile serves the seed worker's call with the seed's semantics exactly
// (mandel.SeedRequest: its coordinates, its iteration count, its set), as
// the seed's frontend sends it:
// GET /?max_iteration=30.0&start_position_x=-1.5&start_position_y=1.5&quantize_length=0.3
// answers {"image": "<base64 PNG>"} for a 50x50 tile.
func (s *Slave) seedTile(c *echo.Context) error {
	if !c.QueryParams().Has("start_position_x") {
		return httpserve.Errorf(http.StatusBadRequest,
			"the seed tile call needs max_iteration, start_position_x, start_position_y and quantize_length; see /mandelbrot/tile for the full API")
	}
	// The seed's page fetched tiles from its own origin or through nginx;
	// a page served elsewhere may call us directly.
	c.Response().Header().Set("Access-Control-Allow-Origin", "*")
	req, err := mandel.SeedRequestFromQuery(c.QueryParams(), s.cfg.MandelLimits)
	if err != nil {
		return mandelError(err)
	}
	ctx := c.Request().Context()
	release, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	img, err := mandel.RenderSeed(ctx, req)
	release()
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return httpserve.Errorf(http.StatusServiceUnavailable, "render stopped: %v", ctxErr)
		}
		return mandelError(err)
	}
	s.done.Add(1)
	s.tiles.Inc()
	var buf bytes.Buffer
	if err := mandel.EncodePNG(&buf, img); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"image": base64.StdEncoding.EncodeToString(buf.Bytes())})
}
