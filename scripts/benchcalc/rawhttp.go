package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawConn is the load generator's HTTP/1.1 keep-alive connection for the
// one-task requests: one request at a time, its head and body written in
// one write, its reply read on the caller's goroutine. net/http's client
// runs a reader and a writer goroutine per connection, two hand-offs per
// request: at 32 connections it took 0.72 of this machine's 2 cores for
// 12,000 requests/s (60 µs a request, 3x wrk's), and that CPU and its
// wake-ups were missing from the services it measured.
type rawConn struct {
	host string // host:port, dialed
	conn net.Conn
	br   *bufio.Reader
	out  []byte
	stop func() bool // the context.AfterFunc that ends a call on cancel
}

// rawTarget is a URL split for rawConn.
type rawTarget struct{ host, path string }

func parseTarget(s string) (rawTarget, error) {
	u, err := url.Parse(s)
	if err != nil {
		return rawTarget{}, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return rawTarget{}, fmt.Errorf("%q: want an http:// URL with a host", s)
	}
	return rawTarget{host: u.Host, path: u.RequestURI()}, nil
}

// post sends a POST of body (application/json) to path and reads the
// reply's body into into. Any failure closes the connection (the next call
// dials again): the reply's framing is then unknown.
func (c *rawConn) post(ctx context.Context, path string, body []byte, timeout time.Duration, into *bytes.Buffer) (code int, err error) {
	if c.conn == nil {
		if err := c.dial(ctx, timeout); err != nil {
			return 0, err
		}
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if err := c.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err // (a cancel after this check sets a past deadline)
	}
	c.out = append(c.out[:0], "POST "...)
	c.out = append(append(append(c.out, path...), " HTTP/1.1\r\nHost: "...), c.host...)
	c.out = append(c.out, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.out = strconv.AppendInt(c.out, int64(len(body)), 10)
	c.out = append(append(c.out, "\r\n\r\n"...), body...)
	if _, err := c.conn.Write(c.out); err != nil {
		return 0, fmt.Errorf("write request: %w", err)
	}
	code, closeAfter, err := readReply(c.br, into)
	if err != nil {
		return code, fmt.Errorf("read reply: %w", err)
	}
	if closeAfter {
		c.close()
	}
	return code, nil
}

func (c *rawConn) dial(ctx context.Context, timeout time.Duration) error {
	d := net.Dialer{Timeout: min(timeout, 2*time.Second)}
	conn, err := d.DialContext(ctx, "tcp", c.host)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	c.stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	return nil
}

func (c *rawConn) close() {
	if c.conn != nil {
		c.stop()
		_ = c.conn.Close()
		c.conn = nil
	}
}

var errMalformed = errors.New("malformed HTTP reply")

// readReply reads one HTTP/1.1 reply: its status code, whether the server
// closes the connection after it, and its body (Content-Length, chunked,
// or up to the connection's end) into into. Not http.ReadResponse: that
// took 1,568 ns and 12 allocations a reply against this one's 285 ns and 1
// (2026-12-07), and in two alternating pairs the generator used 0.03-0.05
// more of the 2 cores that the services being measured share.
func readReply(br *bufio.Reader, into *bytes.Buffer) (code int, closeAfter bool, err error) {
	line, err := readLine(br)
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) || (len(line) > 12 && line[12] != ' ') {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	if code, err = strconv.Atoi(string(line[9:12])); err != nil || code < 100 {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	length, chunked := int64(-1), false
	for {
		line, err := readLine(br)
		if err != nil {
			return code, false, err
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return code, false, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return code, false, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return code, false, fmt.Errorf("%w: Transfer-Encoding %q", errMalformed, value)
			}
			chunked = true
		case bytes.EqualFold(name, []byte("Connection")):
			closeAfter = bytes.EqualFold(value, []byte("close"))
		}
	}
	into.Reset()
	switch {
	case code < 200 || code == 204 || code == 304:
		// no body (a 1xx is not expected: no request says Expect)
	case chunked:
		err = readChunked(br, into)
	case length >= 0:
		_, err = io.CopyN(into, br, length)
	default:
		_, err = into.ReadFrom(br)
		closeAfter = true
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return code, closeAfter, err
}

// readChunked reads a chunked body and its trailer.
func readChunked(br *bufio.Reader, into *bytes.Buffer) error {
	for {
		line, err := readLine(br)
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if n == 0 {
			for { // the trailer, up to its empty line
				if line, err = readLine(br); err != nil || len(line) == 0 {
					return err
				}
			}
		}
		if _, err := io.CopyN(into, br, n); err != nil {
			return err
		}
		if line, err = readLine(br); err != nil || len(line) != 0 {
			return errors.Join(err, fmt.Errorf("%w: no CRLF after a chunk", errMalformed))
		}
	}
}

// readLine reads a CRLF- (or LF-) ended line, without its end; the slice
// is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}
