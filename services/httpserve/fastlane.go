package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/calclab/calclab/services/api"
)

// A FastLane serves a few hot routes (the master's task submission) on the
// connection's own goroutine without net/http: no request or header maps,
// no per-request context chain, no background read. It reads each request
// head itself and serves it only when the request is plain HTTP/1.1 for one
// of its routes: a Content-Length body of 1 byte to MaxBody, no
// Transfer-Encoding, Expect or Upgrade, one Host, CRLF line ends, a head
// that fits its 4 KiB buffer. Any other request, and every request after
// it on that connection, goes with the connection to the net/http server
// (and Echo), unread bytes included: the fast lane never answers a request
// net/http would answer differently, except that a client that disconnects
// during a fast request is noticed when its reply is written, not before.
type FastLane struct {
	// Routes maps "METHOD /path" to its handler.
	Routes map[string]FastHandler
	// MaxBody is the largest body the lane reads; a larger one goes to
	// net/http (which answers 413).
	MaxBody int64
	// BodyTimeout bounds the time a client may take to send a body (408).
	BodyTimeout time.Duration
	Metrics     *Metrics
	Logger      *slog.Logger
}

// FastHandler serves one fast request. r and its slices are valid only
// during the call.
type FastHandler func(ctx context.Context, r *FastRequest, w *FastResponse)

// FastRequest is a request the fast lane serves.
type FastRequest struct {
	Method, Path string
	Query        string // the raw query, without '?'
	Body         []byte
	RequestID    string
	head         []byte // the header lines
	conn         *fastConn
}

// RemoteIP is the client's address without its port, as Echo's RealIP
// gives it (no proxy header is trusted).
func (r *FastRequest) RemoteIP() string {
	if r.conn.ip == "" {
		r.conn.ip = r.conn.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(r.conn.ip); err == nil {
			r.conn.ip = host
		}
	}
	return r.conn.ip
}

// Header returns the first value of the header name (case-insensitive).
func (r *FastRequest) Header(name string) string {
	for h := r.head; len(h) > 0; {
		i := bytes.IndexByte(h, '\n')
		line := h[:i-1] // without CRLF; the head was checked
		h = h[i+1:]
		c := bytes.IndexByte(line, ':')
		if c == len(name) && asciiEqualFold(line[:c], name) {
			return string(bytes.Trim(line[c+1:], " \t"))
		}
	}
	return ""
}

// FastResponse collects a fast reply.
type FastResponse struct {
	code   int
	header []byte // extra "Name: value\r\n" lines
	body   []byte
	buf    []byte // the connection's reply buffer, reused
	done   bool
}

// Buffer returns an empty slice to append a reply body to, reused by the
// connection's next request once the reply is written.
func (w *FastResponse) Buffer() []byte { return w.buf[:0] }

// Header adds a header line to the reply.
func (w *FastResponse) Header(name, value string) {
	w.header = append(append(append(append(w.header, name...), ": "...), value...), "\r\n"...)
}

// JSON sets the reply: code and a JSON body (kept until the reply is
// written, so b must stay unchanged until the handler returns).
func (w *FastResponse) JSON(code int, b []byte) { w.code, w.body, w.done = code, b, true }

// Error sets the reply for err as Echo's error handler of New would: the
// *Error's code, JSON body and Retry-After, or 500 "internal error".
func (w *FastResponse) Error(ctx context.Context, logger *slog.Logger, err error) {
	var ae *Error
	if !errors.As(err, &ae) {
		logger.ErrorContext(ctx, "request failed", "err", err)
		ae = Errorf(http.StatusInternalServerError, "internal error")
	}
	if ae.RetryAfter > 0 {
		w.Header("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	b, _ := jsonLine(ae.Body)
	w.JSON(ae.Code, b)
}

// jsonLine is v as Echo's c.JSON writes it: JSON and a newline.
func jsonLine(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}

// Fast lane limits; net/http's own are ReadHeaderTimeout and IdleTimeout
// of Serve.
const (
	fastBuffer        = 4 << 10
	fastHeaderTimeout = 10 * time.Second
	fastIdleTimeout   = 120 * time.Second
)

var fastReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, fastBuffer) }}
var fastWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, fastBuffer) }}

// front accepts the connections, serves fast requests, and hands every
// other connection to net/http through handoff.
type front struct {
	lane    *FastLane
	routes  map[string]fastRoute
	ln      net.Listener
	handoff *handoffListener
	log     *slog.Logger

	mu       sync.Mutex
	conns    map[*fastConn]struct{}
	stopping atomic.Bool
}

type fastRoute struct {
	method, path string
	h            FastHandler
}

type fastConn struct {
	net.Conn
	active atomic.Bool // reading or serving a request (not idle)
	ip     string      // RemoteIP, once asked for
}

func newFront(ln net.Listener, lane *FastLane, logger *slog.Logger) *front {
	if lane.Logger == nil {
		lane.Logger = logger
	}
	routes := map[string]fastRoute{}
	for k, h := range lane.Routes {
		method, path, _ := strings.Cut(k, " ")
		routes[k] = fastRoute{method: method, path: path, h: h}
	}
	return &front{
		lane: lane, routes: routes, ln: ln, log: logger, conns: map[*fastConn]struct{}{},
		handoff: &handoffListener{addr: ln.Addr(), conns: make(chan net.Conn), closed: make(chan struct{}), errc: make(chan error, 1)},
	}
}

func (f *front) accept() {
	delay := time.Duration(0)
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if f.stopping.Load() || errors.Is(err, net.ErrClosed) {
				f.handoff.fail(fmt.Errorf("accept: %w", err))
				return
			}
			// As net/http: a temporary failure (EMFILE) waits and retries.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			f.log.Warn("accept failed; retrying", "err", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		fc := &fastConn{Conn: c}
		f.mu.Lock()
		f.conns[fc] = struct{}{}
		f.mu.Unlock()
		go f.serve(fc)
	}
}

// stop closes the listener and the idle fast connections, and waits (until
// ctx ends, then closes the rest) for the requests being served.
func (f *front) stop(ctx context.Context) {
	f.stopping.Store(true)
	_ = f.ln.Close()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		f.mu.Lock()
		for c := range f.conns {
			if !c.active.Load() {
				_ = c.Close()
			}
		}
		n := len(f.conns)
		f.mu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			f.mu.Lock()
			for c := range f.conns {
				_ = c.Close()
			}
			f.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

func (f *front) forget(c *fastConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// serve serves the fast requests of one connection until it closes or a
// request is not the fast lane's, which hands the connection to net/http.
func (f *front) serve(c *fastConn) {
	br := fastReaders.Get().(*bufio.Reader)
	br.Reset(c)
	bw := fastWriters.Get().(*bufio.Writer)
	bw.Reset(c)
	handedOff := false
	served := false // a request was served on this connection
	// The request and reply being served: one allocation per connection
	// (the handler's pointers would move per-request ones to the heap).
	rr := new(struct {
		req FastRequest
		w   FastResponse
	})
	defer func() {
		f.forget(c)
		_ = bw.Flush() // no-op unless replies to pipelined requests wait
		bw.Reset(nil)
		fastWriters.Put(bw)
		if !handedOff {
			_ = c.Close()
			br.Reset(nil)
			fastReaders.Put(br)
		}
	}()
	for {
		if br.Buffered() == 0 {
			if f.stopping.Load() {
				return
			}
			if served {
				// Let the goroutines that are ready run first: under
				// load the client's next request arrives meanwhile, and
				// the read below finds it instead of finding nothing and
				// parking until the poller wakes this goroutine.
				runtime.Gosched()
			}
			_ = c.SetReadDeadline(time.Now().Add(fastIdleTimeout))
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		c.active.Store(true)
		_ = c.SetReadDeadline(time.Now().Add(fastHeaderTimeout))
		var (
			h                FastHandler
			headLen, bodyLen int
			closeAfter, ok   bool
		)
		rr.req, h, headLen, bodyLen, closeAfter, ok = f.readHead(br)
		if !ok {
			// Replies to pipelined requests before this one go first.
			if bw.Flush() != nil || headLen < 0 {
				return // the connection failed or timed out mid-head
			}
			handedOff = f.handoff.deliver(&handedConn{Conn: c.Conn, br: br})
			return
		}
		rr.req.conn = c
		rr.w = FastResponse{buf: rr.w.buf}
		if !f.serveOne(c, br, bw, &rr.req, &rr.w, h, headLen, bodyLen, closeAfter) || closeAfter || f.stopping.Load() {
			_ = bw.Flush()
			return
		}
		c.active.Store(false)
		served = true
	}
}

// serveOne reads the body of a fast request, serves it and writes the
// reply; false when the connection must close.
func (f *front) serveOne(c *fastConn, br *bufio.Reader, bw *bufio.Writer, req *FastRequest, w *FastResponse, h FastHandler, headLen, bodyLen int, closeAfter bool) bool {
	start := time.Now()
	consumed := headLen + bodyLen // still in br once served
	if consumed <= br.Buffered() {
		buf, _ := br.Peek(consumed)
		req.Body = buf[headLen:]
	} else {
		// A body not all read yet (larger than the buffer, or still on
		// its way): the header lines are copied out before the reads
		// reuse the buffer.
		req.head = append([]byte(nil), req.head...)
		_, _ = br.Discard(headLen)
		consumed = 0
		if f.lane.BodyTimeout > 0 {
			_ = c.SetReadDeadline(time.Now().Add(f.lane.BodyTimeout))
		}
		req.Body = make([]byte, bodyLen)
		if _, err := io.ReadFull(br, req.Body); err != nil {
			w.Error(context.Background(), f.log, BodyError(err, f.lane.MaxBody))
			f.write(bw, req, w, true)
			f.observe(req, w.code, start)
			return false
		}
	}
	ctx := WithRequestID(context.Background(), req.RequestID)
	func() {
		defer func() {
			if r := recover(); r != nil {
				f.log.ErrorContext(ctx, "panic in handler", "path", req.Path, "panic", fmt.Sprint(r))
				*w = FastResponse{buf: w.buf}
				w.Error(ctx, f.log, Errorf(http.StatusInternalServerError, "internal error (request id %s)", req.RequestID))
			}
		}()
		h(ctx, req, w)
	}()
	if !w.done {
		w.Error(ctx, f.log, errors.New("fast handler wrote no reply"))
	}
	f.write(bw, req, w, closeAfter || f.stopping.Load())
	f.observe(req, w.code, start)
	_, _ = br.Discard(consumed)
	if cap(w.body) > cap(w.buf) && cap(w.body) <= fastBuffer {
		w.buf = w.body[:0] // the next reply reuses the larger buffer
	}
	if br.Buffered() > 0 && !closeAfter {
		return true // a pipelined request waits: its reply goes in the same write
	}
	return bw.Flush() == nil
}

func (f *front) observe(req *FastRequest, code int, start time.Time) {
	if m := f.lane.Metrics; m != nil {
		m.fast.Inc()
		m.duration.WithLabelValues(req.Path, req.Method, codeLabel(code)).Observe(time.Since(start).Seconds())
	}
	lvl := slog.LevelDebug
	if code >= 500 {
		lvl = slog.LevelWarn
	}
	ctx := context.Background()
	if f.log.Enabled(ctx, lvl) {
		f.log.Log(WithRequestID(ctx, req.RequestID), lvl, "request", "method", req.Method, "path", req.Path, "code", code, "duration", time.Since(start))
	}
}

// write writes the reply's head and body to bw.
func (f *front) write(bw *bufio.Writer, req *FastRequest, w *FastResponse, closing bool) {
	h := append(bw.AvailableBuffer(), "HTTP/1.1 "...) // appended in place in bw's buffer
	h = strconv.AppendInt(h, int64(w.code), 10)
	h = append(append(append(h, ' '), http.StatusText(w.code)...), "\r\nContent-Type: application/json\r\n"...)
	h = append(append(append(h, api.HeaderRequestID+": "...), req.RequestID...), "\r\n"...)
	h = append(h, w.header...)
	h = append(time.Now().UTC().AppendFormat(append(h, "Date: "...), http.TimeFormat), "\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(w.body)), 10)
	if closing {
		h = append(h, "\r\nConnection: close"...)
	}
	h = append(h, "\r\n\r\n"...)
	_, _ = bw.Write(h)
	_, _ = bw.Write(w.body)
}

// readHead reads and checks a request head. ok says it is the fast lane's;
// then headLen is the head's length and bodyLen the Content-Length.
// headLen < 0 means the connection failed or timed out mid-head.
func (f *front) readHead(br *bufio.Reader) (req FastRequest, h FastHandler, headLen, bodyLen int, closeAfter, ok bool) {
	var buf []byte
	for {
		buf, _ = br.Peek(br.Buffered())
		end, complete, plain := headEnd(buf)
		if !plain {
			return req, nil, 0, 0, false, false
		}
		if complete {
			buf, headLen = buf[:end], end
			break
		}
		if br.Buffered() == br.Size() {
			return req, nil, 0, 0, false, false // a head larger than the buffer
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return req, nil, -1, 0, false, false
		}
	}
	line, rest, _ := bytes.Cut(buf, []byte("\r\n"))
	method, line, ok1 := bytes.Cut(line, []byte(" "))
	target, proto, ok2 := bytes.Cut(line, []byte(" "))
	if !ok1 || !ok2 || string(proto) != "HTTP/1.1" {
		return req, nil, headLen, 0, false, false
	}
	path, query, _ := bytes.Cut(target, []byte("?"))
	var key [64]byte
	route, found := f.routes[string(append(append(append(key[:0], method...), ' '), path...))]
	if !found {
		return req, nil, headLen, 0, false, false
	}
	req.head = rest[:len(rest)-2] // without the empty line's CRLF
	length, hosts, idSeen := int64(-1), 0, false
	for hl := req.head; len(hl) > 0; {
		i := bytes.IndexByte(hl, '\n')
		l := hl[:i-1]
		hl = hl[i+1:]
		c := bytes.IndexByte(l, ':')
		// net/http's own checks of names and values.
		if c <= 0 || !httpguts.ValidHeaderFieldName(string(l[:c])) || !httpguts.ValidHeaderFieldValue(string(l[c+1:])) {
			return req, nil, headLen, 0, false, false
		}
		name, value := l[:c], bytes.Trim(l[c+1:], " \t")
		switch {
		case asciiEqualFold(name, "Content-Length"):
			v, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || length >= 0 || v <= 0 || v > f.lane.MaxBody || value[0] == '+' {
				return req, nil, headLen, 0, false, false
			}
			length = v
		case asciiEqualFold(name, "Host"):
			if !httpguts.ValidHostHeader(string(value)) {
				return req, nil, headLen, 0, false, false
			}
			hosts++
		case asciiEqualFold(name, "Connection"):
			switch {
			case asciiEqualFold(value, "close"):
				closeAfter = true
			case asciiEqualFold(value, "keep-alive"):
			default:
				return req, nil, headLen, 0, false, false
			}
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return req, nil, headLen, 0, false, false
		case asciiEqualFold(name, api.HeaderRequestID):
			if !idSeen && len(value) <= 64 {
				req.RequestID = string(value)
			}
			idSeen = true
		}
	}
	if length < 0 || hosts != 1 {
		return req, nil, headLen, 0, false, false
	}
	if req.RequestID == "" {
		req.RequestID = NewRequestID()
	}
	req.Method, req.Path = route.method, route.path
	if len(query) > 0 {
		// net/http's parse of the target, with its refusals (control
		// bytes); the path is a route's, so only a query needs it.
		u, err := url.ParseRequestURI(string(target))
		if err != nil || u.Path != route.path {
			return req, nil, headLen, 0, false, false
		}
		req.Query = u.RawQuery
	}
	return req, route.h, headLen, int(length), closeAfter, true
}

// headEnd finds the end of a request head in buf (the index after its
// empty line). plain is false when a line ends in a bare LF or the head
// starts with an empty line: net/http's business.
func headEnd(buf []byte) (end int, complete, plain bool) {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0, false, true
		}
		j += i
		if j == 0 || buf[j-1] != '\r' {
			return 0, false, false
		}
		if j == i+1 { // "\r\n" alone: the end of the head
			return j + 1, i > 0, i > 0
		}
		i = j + 1
	}
}

// asciiEqualFold says whether b equals s, ignoring the case of ASCII
// letters only, as net/http compares header names and tokens;
// bytes.EqualFold folds Unicode too (U+212A KELVIN SIGN equals "k").
func asciiEqualFold[T ~string | ~[]byte](b T, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(s) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// handoffListener gives the connections that leave the fast lane to
// net/http's Serve.
type handoffListener struct {
	addr      net.Addr
	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	errc      chan error
}

func (l *handoffListener) deliver(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.closed:
		return false
	}
}

func (l *handoffListener) fail(err error) {
	select {
	case l.errc <- err:
	default:
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		return nil, err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// handedConn is a connection net/http reads after the fast lane: first the
// bytes the lane had buffered, then the socket.
type handedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *handedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br.Reset(nil)
		fastReaders.Put(c.br)
		c.br = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the connection (a hijacked one ending gracefully).
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
