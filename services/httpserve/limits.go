package httpserve

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
)

// Defaults of the request limits both services apply.
const (
	// DefaultBodyTimeout bounds the time a client may take to send a
	// request body: a chunked body that never ends cannot hold its
	// connection (and file descriptor) forever.
	DefaultBodyTimeout = 30 * time.Second
	// DefaultMaxConns bounds the connections served at once; more wait in
	// the listen backlog.
	DefaultMaxConns = 4096
	// LingerTimeout and LingerBytes bound how long and how much of an
	// oversized body is read and discarded after its 413 is sent, so the
	// client reads the 413 instead of a connection reset (as nginx's
	// lingering_close does).
	LingerTimeout = 5 * time.Second
	LingerBytes   = 256 << 20
)

// BodyDeadline gives every request that has a body d to send it (408
// after). The deadline is lifted once a handler has read the body
// (ReadJSON, BodyRead), so a long reply (a synchronous task, a stream) is
// not cut.
func BodyDeadline(d time.Duration) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			req := c.Request()
			if d > 0 && req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0 {
				_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(d))
			}
			return next(c)
		}
	}
}

// BodyRead lifts the body deadline once the body has been read whole.
func BodyRead(c *echo.Context) {
	_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Time{})
}

// BodyError maps an error reading a request body to a reply: 413 past the
// limit, 408 past the body deadline, 400 otherwise.
func BodyError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, "request body exceeds the limit of %d bytes", limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Errorf(http.StatusRequestTimeout, "request body was not received in time")
	default:
		return Errorf(http.StatusBadRequest, "reading request body: %v", err)
	}
}

// linger sends the reply already written and reads what is left of the
// request body, within LingerTimeout and LingerBytes.
func linger(c *echo.Context) {
	rc := http.NewResponseController(c.Response())
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(LingerTimeout))
	_, _ = io.CopyN(io.Discard, c.Request().Body, LingerBytes)
}

// LimitListener returns a listener that serves at most n connections at
// once; Accept waits for a free slot.
func LimitListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		n = DefaultMaxConns
	}
	return &limitListener{Listener: ln, sem: make(chan struct{}, n), done: make(chan struct{})}
}

type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// CloseWrite half-closes the connection (a hijacked one ending gracefully).
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CheckListen reports whether addr is an address a service can listen on:
// host:port with a port from 0 to 65535 (an empty host is every address).
func CheckListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port, e.g. 127.0.0.1:5000 or :5000", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: port %q is not a TCP port; use 0 to 65535", addr, port)
	}
	return nil
}
