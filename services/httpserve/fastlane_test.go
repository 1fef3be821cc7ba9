package httpserve

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v5"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// laneServer serves POST /echo on the fast lane and every route on Echo;
// both answer with the lane that served them and the body they read.
type laneServer struct {
	addr    string
	release chan struct{} // closed: POST /block returns
	entered chan struct{} // a POST /block request arrived
	stop    func() error  // stops the server; Serve's error
}

func startLaneServer(t *testing.T, bodyTimeout time.Duration) *laneServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &laneServer{addr: ln.Addr().String(), release: make(chan struct{}), entered: make(chan struct{}, 8)}
	e := New(quiet, nil)
	slow := func(c *echo.Context) error {
		body, err := ReadBody(c, 1<<20)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, map[string]string{"lane": "net/http", "body": string(body), "id": RequestID(c.Request().Context())})
	}
	e.POST("/echo", slow)
	e.POST("/other", slow)
	fast := func(ctx context.Context, r *FastRequest, w *FastResponse) {
		b, _ := jsonLine(map[string]string{"lane": "fast", "body": string(r.Body), "id": RequestID(ctx), "query": r.Query, "x": r.Header("X-Test"), "ip": r.RemoteIP()})
		w.JSON(http.StatusOK, append(w.Buffer(), b...))
	}
	lane := &FastLane{
		Routes: map[string]FastHandler{
			"POST /echo": fast,
			"POST /panic": func(context.Context, *FastRequest, *FastResponse) {
				panic("boom")
			},
			"POST /fail": func(ctx context.Context, _ *FastRequest, w *FastResponse) {
				e := Errorf(http.StatusServiceUnavailable, "no slaves")
				e.RetryAfter = 5
				w.Error(ctx, quiet, e)
			},
			"POST /block": func(ctx context.Context, r *FastRequest, w *FastResponse) {
				s.entered <- struct{}{}
				<-s.release
				fast(ctx, r, w)
			},
		},
		MaxBody: 1 << 20, BodyTimeout: bodyTimeout,
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- ServeFast(ctx, ln, e, lane, 5*time.Second, quiet) }()
	var once sync.Once
	var serveErr error
	s.stop = func() error {
		once.Do(func() { cancel(); serveErr = <-errc })
		return serveErr
	}
	t.Cleanup(func() {
		select {
		case <-s.release:
		default:
			close(s.release)
		}
		_ = s.stop()
	})
	return s
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readReply reads one response with net/http's own client parser, so a
// malformed fast reply fails the test.
func readReply(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	for err == nil && res.StatusCode == http.StatusContinue {
		res, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		t.Fatalf("reading the reply: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the reply body: %v", err)
	}
	return res, string(b)
}

func post(path, body string, headers ...string) string {
	h := ""
	for _, l := range headers {
		h += l + "\r\n"
	}
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: test\r\n%sContent-Length: %d\r\n\r\n%s", path, h, len(body), body)
}

// TestFastLaneServesOnlyPlainRequests: what the fast lane serves and what
// it leaves to net/http, request by request on fresh connections; every
// reply parses with net/http's client and carries the body it was sent.
func TestFastLaneServesOnlyPlainRequests(t *testing.T) {
	s := startLaneServer(t, 5*time.Second)
	big := strings.Repeat("b", 20000) // beyond the 4 KiB buffer
	tests := []struct {
		name, raw, lane string
		code            int
		body            string
	}{
		{"plain POST", post("/echo", "1+2"), "fast", 200, "1+2"},
		{"lower-case header names", "POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi", "fast", 200, "hi"},
		{"query", post("/echo?async=true", "q"), "fast", 200, "q"},
		{"keep-alive", post("/echo", "k", "Connection: keep-alive"), "fast", 200, "k"},
		{"body beyond the buffer", post("/echo", big), "fast", 200, big},
		{"another route", post("/other", "o"), "net/http", 200, "o"},
		{"chunked body", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", "net/http", 200, "ab"},
		{"Expect", post("/echo", "e", "Expect: 100-continue"), "net/http", 200, "e"},
		{"bare LF line ends", "POST /echo HTTP/1.1\nHost: t\nContent-Length: 1\n\nx", "net/http", 200, "x"},
		{"HTTP/1.0", "POST /echo HTTP/1.0\r\nHost: t\r\nContent-Length: 1\r\n\r\nz", "net/http", 200, "z"},
		{"head beyond the buffer", post("/echo", "h", "X-Pad: "+strings.Repeat("p", 5000)), "net/http", 200, "h"},
		{"Connection: upgrade", post("/echo", "u", "Connection: Upgrade", "Upgrade: websocket"), "net/http", 200, "u"},
		{"no Host", "POST /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx", "net/http", 400, ""},
		{"two Content-Lengths", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", "net/http", 400, ""},
		{"bad Host", "POST /echo HTTP/1.1\r\nHost: a b\r\nContent-Length: 1\r\n\r\nx", "net/http", 400, ""},
		{"control byte in a value", "POST /echo HTTP/1.1\r\nHost: t\r\nX-Test: a\x01b\r\nContent-Length: 1\r\n\r\nx", "net/http", 400, ""},
		{"bad header name", "POST /echo HTTP/1.1\r\nHost: t\r\nBad Name: 1\r\nContent-Length: 1\r\n\r\nx", "net/http", 400, ""},
		{"body over MaxBody", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n", "net/http", 413, ""},
		{"empty body", post("/echo", ""), "net/http", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dial(t, s.addr)
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			if tc.code >= 400 {
				// net/http's own refusal, or Echo's JSON 413, which comes
				// whole at once (its length given) although the unread
				// body is still being discarded for up to LingerTimeout.
				_ = c.SetReadDeadline(time.Now().Add(LingerTimeout / 2))
				res, body := readReply(t, br)
				if res.StatusCode != tc.code {
					t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.code, body)
				}
				return
			}
			res, body := readReply(t, br)
			if res.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.code, body)
			}
			if tc.lane == "fast" && !strings.Contains(body, `"ip":"127.0.0.1"`) {
				t.Errorf("remote IP: %.200s", body)
			}
			if !strings.Contains(body, `"lane":"`+tc.lane+`"`) {
				t.Errorf("served by the wrong lane, want %s: %.200s", tc.lane, body)
			}
			if !strings.Contains(body, `"body":"`+tc.body+`"`) {
				t.Errorf("the handler read a different body than was sent: %.200s", body)
			}
			if got := res.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if id := res.Header.Get("X-Request-Id"); len(id) != 16 || !strings.Contains(body, `"id":"`+id+`"`) {
				t.Errorf("request id %q not generated or not the handler's: %s", id, body)
			}
		})
	}
}

// TestFastLaneConnection: pipelined requests, a connection that moves to
// net/http midway, Connection: close, a panic, an error reply.
func TestFastLaneConnection(t *testing.T) {
	s := startLaneServer(t, 5*time.Second)
	t.Run("pipelined replies in order", func(t *testing.T) {
		c, br := dial(t, s.addr)
		_, _ = io.WriteString(c, post("/echo", "1")+post("/echo?n=2", "2", "X-Test: two", "X-Request-Id: mine")+post("/echo", "3"))
		for i, want := range []string{`"body":"1"`, `"body":"2","id":"mine","ip":"127.0.0.1","lane":"fast","query":"n=2","x":"two"`, `"body":"3"`} {
			res, body := readReply(t, br)
			if res.StatusCode != 200 || !strings.Contains(body, want) {
				t.Fatalf("reply %d: %d %s, want %s", i+1, res.StatusCode, body, want)
			}
		}
	})
	t.Run("handed to net/http midway", func(t *testing.T) {
		c, br := dial(t, s.addr)
		_, _ = io.WriteString(c, post("/echo", "1")+post("/other", "2")+post("/echo", "3"))
		for i, want := range []string{`"lane":"fast"`, `"body":"2","id":`, `"body":"3","id":`} {
			res, body := readReply(t, br)
			if res.StatusCode != 200 || !strings.Contains(body, want) {
				t.Fatalf("reply %d: %d %s, want %s", i+1, res.StatusCode, body, want)
			}
			if i > 0 && !strings.Contains(body, `"lane":"net/http"`) {
				t.Fatalf("reply %d after the hand-off did not come from net/http: %s", i+1, body)
			}
		}
	})
	t.Run("Connection: close", func(t *testing.T) {
		c, br := dial(t, s.addr)
		_, _ = io.WriteString(c, post("/echo", "1", "Connection: close"))
		res, _ := readReply(t, br)
		if !res.Close {
			t.Error("the reply does not say Connection: close")
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("the connection stayed open: %v", err)
		}
	})
	t.Run("panic", func(t *testing.T) {
		c, br := dial(t, s.addr)
		_, _ = io.WriteString(c, post("/panic", "1")+post("/echo", "2"))
		res, body := readReply(t, br)
		if res.StatusCode != 500 || !strings.Contains(body, "internal error (request id "+res.Header.Get("X-Request-Id")+")") || strings.Contains(body, ".go:") {
			t.Fatalf("panic reply: %d %s", res.StatusCode, body)
		}
		if res, body := readReply(t, br); res.StatusCode != 200 {
			t.Fatalf("the connection did not survive the panic: %d %s", res.StatusCode, body)
		}
	})
	t.Run("error reply", func(t *testing.T) {
		c, br := dial(t, s.addr)
		_, _ = io.WriteString(c, post("/fail", "1"))
		res, body := readReply(t, br)
		if res.StatusCode != 503 || res.Header.Get("Retry-After") != "5" || body != "{\"error\":\"no slaves\"}\n" {
			t.Fatalf("error reply: %d %v %q", res.StatusCode, res.Header, body)
		}
	})
}

// TestFastLaneBodyDeadline: a body that stops coming gets 408 after the
// body timeout, as BodyDeadline gives on the Echo path.
func TestFastLaneBodyDeadline(t *testing.T) {
	s := startLaneServer(t, 300*time.Millisecond)
	c, br := dial(t, s.addr)
	// A Content-Length beyond the buffer, so the lane waits for the body.
	_, _ = io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10000\r\n\r\npartial")
	start := time.Now()
	res, body := readReply(t, br)
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(body, "not received in time") {
		t.Fatalf("stalled body: %d %s", res.StatusCode, body)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("408 after %s, body timeout 300ms", d)
	}
}

// TestFastLaneShutdown: stopping closes idle fast connections at once and
// lets a request being served finish, its reply saying Connection: close.
func TestFastLaneShutdown(t *testing.T) {
	s := startLaneServer(t, 5*time.Second)
	idle, idleBR := dial(t, s.addr)
	_, _ = io.WriteString(idle, post("/echo", "1"))
	if res, _ := readReply(t, idleBR); res.StatusCode != 200 {
		t.Fatal(res.Status)
	}
	busy, busyBR := dial(t, s.addr)
	_, _ = io.WriteString(busy, post("/block", "in flight"))
	<-s.entered
	stopped := make(chan error, 1)
	go func() { stopped <- s.stop() }()
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Fatalf("the idle connection was not closed: %v", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Serve returned (%v) before the request in flight finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(s.release)
	res, body := readReply(t, busyBR)
	if res.StatusCode != 200 || !strings.Contains(body, `"body":"in flight"`) || !res.Close {
		t.Fatalf("in-flight reply: %d close=%v %s", res.StatusCode, res.Close, body)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestRequestIDThroughDerivedContexts: the id survives contexts derived
// from the one that carries it, and cancellation still reaches through.
func TestRequestIDThroughDerivedContexts(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	withID := WithRequestID(parent, "abc")
	timed, cancel := context.WithTimeout(withID, time.Minute)
	defer cancel()
	type other struct{}
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"direct", withID, "abc"},
		{"derived", timed, "abc"},
		{"value on top", context.WithValue(timed, other{}, 1), "abc"},
		{"replaced", WithRequestID(timed, "def"), "def"},
		{"none", parent, ""},
	}
	for _, tc := range tests {
		if got := RequestID(tc.ctx); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	cancelParent()
	select {
	case <-timed.Done():
	case <-time.After(time.Second):
		t.Fatal("cancelling the parent did not reach a context derived through the request id")
	}
}

// FuzzFastLaneHeadAgreesWithNetHTTP: whatever head the fast lane takes as
// its own, net/http's request parser takes too, with the same method,
// path, query, body length and request id: the lane serves nothing
// net/http would refuse or read differently.
func FuzzFastLaneHeadAgreesWithNetHTTP(f *testing.F) {
	for _, s := range []string{
		post("/echo", "1+2"), post("/echo?async=true", "x", "X-Request-Id: abc", "Connection: close"),
		"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +1\r\n\r\nx",
		"POST /echo HTTP/1.1\r\nHost: t\r\n Content-Length: 1\r\n\r\nx",
		"POST /echo HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\nContent-Length: 1\r\n\r\nx",
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // newFront takes its address only
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	fr := newFront(ln, &FastLane{Routes: map[string]FastHandler{"POST /echo": func(context.Context, *FastRequest, *FastResponse) {}}, MaxBody: 1 << 10}, quiet)
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, _, headLen, bodyLen, _, ok := fr.readHead(bufio.NewReaderSize(bytes.NewReader(raw), fastBuffer))
		if !ok {
			return
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw[:headLen])))
		if err != nil {
			t.Fatalf("the fast lane took a head net/http refuses (%v): %q", err, raw[:headLen])
		}
		switch {
		case hr.Method != req.Method, hr.URL.Path != req.Path, hr.URL.RawQuery != req.Query:
			t.Fatalf("request line: net/http %s %s ? %s, fast lane %s %s ? %s", hr.Method, hr.URL.Path, hr.URL.RawQuery, req.Method, req.Path, req.Query)
		case hr.ContentLength != int64(bodyLen), len(hr.TransferEncoding) > 0:
			t.Fatalf("body: net/http %d bytes (%v), fast lane %d", hr.ContentLength, hr.TransferEncoding, bodyLen)
		case hr.Header.Get("X-Request-Id") != "" && len(hr.Header.Get("X-Request-Id")) <= 64 && hr.Header.Get("X-Request-Id") != req.RequestID:
			t.Fatalf("request id: net/http %q, fast lane %q", hr.Header.Get("X-Request-Id"), req.RequestID)
		}
	})
}
