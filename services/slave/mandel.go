package slave

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/http"
	"runtime"
	"strconv"
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

// renderTile validates and renders one tile in an evaluation slot.
func (s *Slave) renderTile(c *echo.Context) (mandel.Tile, []byte, time.Duration, error) {
	t, err := mandel.TileFromQuery(c.QueryParams())
	if err == nil {
		err = t.Validate(s.cfg.MandelLimits)
	}
	if err != nil {
		return t, nil, 0, mandelError(err)
	}
	release, err := s.acquire(c.Request().Context())
	if err != nil {
		return t, nil, 0, err
	}
	defer release()
	start := time.Now()
	img, err := mandel.Render(c.Request().Context(), t, runtime.GOMAXPROCS(0))
	if err != nil {
		if ctxErr := c.Request().Context().Err(); ctxErr != nil { // caller gone or gave up
			return t, nil, 0, httpserve.Errorf(http.StatusServiceUnavailable, "render stopped: %v", ctxErr)
		}
		return t, nil, 0, mandelError(err)
	}
	s.done.Add(1)
	s.tiles.Inc()
	return t, img.Pix, time.Since(start), nil
}

// tile serves GET /mandelbrot/tile: one tile as PNG (default) or raw RGBA.
func (s *Slave) tile(c *echo.Context) error {
	format := c.QueryParam("format")
	if format == "" {
		format = FormatPNG
	}
	if format != FormatPNG && format != FormatRaw {
		e := httpserve.Errorf(http.StatusBadRequest, "format must be png or raw, got %q", format)
		e.Body.Field = "format"
		return e
	}
	t, pix, took, err := s.renderTile(c)
	if err != nil {
		return err
	}
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
	var buf bytes.Buffer
	if err := mandel.EncodePNG(&buf, rgba(pix, t.Width, t.Height)); err != nil {
		return err
	}
	c.Response().Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	return c.Blob(http.StatusOK, "image/png", buf.Bytes())
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
