// Package httpserve holds the HTTP plumbing the master and the slave share:
// an Echo instance whose every error is a JSON api.Error, request ids that
// follow a task across services, panic recovery without stack traces,
// size-limited body decoding, request metrics and graceful serving.
package httpserve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/calclab/calclab/internal/deadpeer"
	"github.com/calclab/calclab/services/api"
)

type ctxKey struct{}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	if c, ok := ctx.(*requestIDCtx); ok {
		return c.id
	}
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return &requestIDCtx{ctx, id}
}

// requestIDCtx is context.WithValue(ctx, ctxKey{}, id) in one allocation
// instead of two (the value is boxed only when asked for through Value):
// every task makes two of them.
type requestIDCtx struct {
	context.Context
	id string
}

func (c *requestIDCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c.id
	}
	return c.Context.Value(key)
}

// statusText holds the decimal form of the HTTP status codes, for metric
// labels without an allocation per request.
var statusText = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func codeLabel(code int) string {
	if code >= 0 && code < len(statusText) {
		return statusText[code]
	}
	return strconv.Itoa(code)
}

// NewRequestID returns a random 16-hex-digit id.
func NewRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Error is an error that knows its HTTP status and JSON body.
type Error struct {
	Code int
	Body api.Error
	// RetryAfter, when set, becomes a Retry-After header (seconds).
	RetryAfter int
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Body.Error) }

// Errorf returns an *Error with the given status and message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Body: api.Error{Error: fmt.Sprintf(format, args...)}}
}

// Metrics are the request metrics of one service.
type Metrics struct {
	duration *prometheus.HistogramVec
	fast     prometheus.Counter
}

// NewMetrics registers the request histogram and calclab_build_info on
// reg.
func NewMetrics(reg prometheus.Registerer, service string) *Metrics {
	m := &Metrics{duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:        "calclab_http_request_duration_seconds",
		Help:        "HTTP request latency by route, method and status code.",
		ConstLabels: prometheus.Labels{"service": service},
		Buckets:     []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "method", "code"}),
		fast: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "calclab_http_fast_lane_requests_total",
			Help:        "HTTP requests served by the fast lane (plain HTTP/1.1 task submissions) instead of net/http; they are in the latency histogram too.",
			ConstLabels: prometheus.Labels{"service": service},
		})}
	reg.MustRegister(m.duration, m.fast, BuildInfo())
	return m
}

// BuildInfo is the gauge calclab_build_info{version,goversion,revision} 1:
// the calclab version, the Go version the binary was built with and its
// VCS revision ("unknown" when built outside a repository).
func BuildInfo() prometheus.Collector {
	rev := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		modified := false
		for _, kv := range bi.Settings {
			switch kv.Key {
			case "vcs.revision":
				rev = kv.Value
			case "vcs.modified":
				modified = kv.Value == "true"
			}
		}
		if modified && rev != "unknown" {
			rev += "-dirty"
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "calclab_build_info",
		Help: "Always 1; the labels say which calclab build this is.",
		ConstLabels: prometheus.Labels{
			"version": api.Version, "goversion": runtime.Version(), "revision": rev,
		},
	})
	g.Set(1)
	return g
}

// New returns an Echo instance with JSON errors, recovery, request ids and
// request metrics (m may be nil).
func New(logger *slog.Logger, m *Metrics) *echo.Echo {
	e := echo.New()
	e.Logger = logger
	e.HTTPErrorHandler = errorHandler(logger)
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) (err error) {
			req := c.Request()
			id := req.Header.Get(api.HeaderRequestID)
			if id == "" || len(id) > 64 {
				id = NewRequestID()
			}
			c.Response().Header().Set(api.HeaderRequestID, id)
			c.SetRequest(req.WithContext(WithRequestID(req.Context(), id)))
			start := time.Now()
			defer func() {
				if r := recover(); r != nil {
					logger.ErrorContext(c.Request().Context(), "panic in handler", "path", req.URL.Path, "panic", fmt.Sprint(r))
					err = Errorf(http.StatusInternalServerError, "internal error (request id %s)", id)
				}
				if err != nil {
					var ae *Error
					if errors.As(err, &ae) && ae.Code == http.StatusRequestEntityTooLarge {
						// Answer at once and close after lingering: without
						// this, net/http reads up to 256 KB of the unwanted
						// body before it sends the reply.
						c.Response().Header().Set("Connection", "close")
					}
					c.Echo().HTTPErrorHandler(c, err)
					err = nil
				}
				code := 0
				if r, _ := echo.UnwrapResponse(c.Response()); r != nil {
					code = r.Status
				}
				if code == http.StatusRequestEntityTooLarge {
					linger(c)
				}
				if m != nil {
					route := c.Path()
					if route == "" {
						route = "unmatched"
					}
					m.duration.WithLabelValues(route, req.Method, codeLabel(code)).Observe(time.Since(start).Seconds())
				}
				lvl := slog.LevelDebug
				if code >= 500 {
					lvl = slog.LevelWarn
				}
				if logger.Enabled(req.Context(), lvl) {
					logger.Log(c.Request().Context(), lvl, "request", "method", req.Method, "path", req.URL.Path, "code", code, "duration", time.Since(start))
				}
			}()
			return next(c)
		}
	})
	return e
}

func errorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(c *echo.Context, err error) {
		if r, _ := echo.UnwrapResponse(c.Response()); r != nil && r.Committed {
			return
		}
		code := http.StatusInternalServerError
		body := api.Error{Error: "internal error"}
		var ae *Error
		var he *echo.HTTPError
		var sc echo.HTTPStatusCoder
		switch {
		case errors.As(err, &ae):
			code, body = ae.Code, ae.Body
			if ae.RetryAfter > 0 {
				c.Response().Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
			}
		case errors.As(err, &he):
			code = he.Code
			body.Error = he.Message
			if body.Error == "" {
				body.Error = http.StatusText(code)
			}
		case errors.As(err, &sc) && sc.StatusCode() != 0:
			code = sc.StatusCode()
			body.Error = http.StatusText(code)
		default:
			logger.ErrorContext(c.Request().Context(), "request failed", "err", err)
		}
		switch code {
		case http.StatusNotFound:
			if ae == nil {
				body.Error = "no such endpoint: " + c.Request().Method + " " + c.Request().URL.Path
			}
		case http.StatusMethodNotAllowed:
			body.Error = "method " + c.Request().Method + " is not allowed on " + c.Request().URL.Path
		}
		if c.Request().Method == http.MethodHead {
			_ = c.NoContent(code)
			return
		}
		// With its length: a 413 is flushed before the unread body is
		// discarded (linger), and a chunked reply would end only then.
		b, _ := jsonLine(body)
		c.Response().Header().Set("Content-Length", strconv.Itoa(len(b)))
		_ = c.Blob(code, echo.MIMEApplicationJSON, b)
	}
}

// RequireJSON refuses (415) a request whose Content-Type is not
// application/json: browsers send cross-site forms and text/plain POSTs
// without a preflight, never application/json.
func RequireJSON(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		ct := c.Request().Header.Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			e := Errorf(http.StatusUnsupportedMediaType, "Content-Type must be application/json, got %q", ct)
			e.Body.Field = "Content-Type"
			return e
		}
		return next(c)
	}
}

// ReadJSON decodes the request body into v, reading at most limit bytes.
// It returns a 413 *Error for an oversized body and a 400 one for malformed
// JSON, each with a message naming the problem.
func ReadJSON(c *echo.Context, limit int64, v any) error {
	body, err := ReadBody(c, limit)
	if err != nil {
		return err
	}
	return DecodeJSON(body, v)
}

// ReadBody reads the request body, at most limit bytes (413 past it, 408
// past the body deadline, which it then lifts).
func ReadBody(c *echo.Context, limit int64) ([]byte, error) {
	req := c.Request()
	if req.ContentLength > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, "request body is %d bytes, limit is %d", req.ContentLength, limit)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, limit))
	if err != nil {
		return nil, BodyError(err, limit)
	}
	BodyRead(c)
	return body, nil
}

// DecodeJSON decodes a request body into v: a 400 *Error naming the
// problem for an empty body or malformed JSON.
func DecodeJSON(body []byte, v any) error {
	if len(body) == 0 {
		return Errorf(http.StatusBadRequest, "request body is empty; expected a JSON object")
	}
	if err := json.Unmarshal(body, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return Errorf(http.StatusBadRequest, "malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			e := Errorf(http.StatusBadRequest, "field %q must be %s, got JSON %s", te.Field, te.Type.String(), te.Value)
			e.Body.Field = te.Field
			return e
		default:
			return Errorf(http.StatusBadRequest, "malformed JSON: %v", err)
		}
	}
	return nil
}

// Serve serves h on ln until ctx ends, then shuts down gracefully, giving
// in-flight requests up to grace to finish. Request headers must arrive
// within 10s (bodies: BodyDeadline; connections: LimitListener).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, grace time.Duration, logger *slog.Logger) error {
	return ServeFast(ctx, ln, h, nil, grace, logger)
}

// ServeFast is Serve with the routes of lane (when not nil) served by the
// fast lane, and everything else by h.
func ServeFast(ctx context.Context, ln net.Listener, h http.Handler, lane *FastLane, grace time.Duration, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: fastHeaderTimeout,
		IdleTimeout:       fastIdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	var f *front
	if lane != nil {
		f = newFront(ln, lane, logger)
		go f.accept()
		ln = f.handoff
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if f != nil {
			f.stop(context.Background())
		}
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if f != nil {
		// The fast connections finish their requests while net/http
		// shuts down its own.
		stopped := make(chan struct{})
		go func() { f.stop(sctx); close(stopped) }()
		defer func() { <-stopped }()
	}
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Client returns an HTTP client for calls between services: keep-alive
// connections, a dial timeout, and a peer that died without closing its
// connections (a killed VM) found within about 5s (deadpeer.Services)
// rather than by each call's own timeout (a tile's is a minute).
// dialControl, when set, vets every address the client connects to.
func Client(dialControl func(network, address string) error) *http.Client {
	d := deadpeer.Services.Dialer(2*time.Second, dialControl)
	tr := &http.Transport{
		DialContext:         d.DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr}
}

// contextHandler adds the request id carried by a record's context to the
// record, so any log call made with a request's (or a task's) context names
// it: master and slave log the same id for one task.
type contextHandler struct{ slog.Handler }

// ContextHandler wraps h so that records logged with a context that
// carries a request id get a request_id attribute.
func ContextHandler(h slog.Handler) slog.Handler { return contextHandler{h} }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
