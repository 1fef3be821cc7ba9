package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		name, in  string
		code      int
		body      string
		closeConn bool
		wantErr   string
		rest      string // left unread: the next reply
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1", code: 200, body: "hello", rest: "HTTP/1.1"},
		{name: "chunked with trailer", in: "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nnext", code: 201, body: "abcde", rest: "next"},
		{name: "connection close", in: "HTTP/1.1 503 Service Unavailable\r\nconnection: Close\r\ncontent-length: 2\r\n\r\n{}", code: 503, body: "{}", closeConn: true},
		{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1", code: 204, rest: "HTTP/1.1"},
		{name: "body to the end", in: "HTTP/1.1 200 OK\r\n\r\nall of it", code: 200, body: "all of it", closeConn: true},
		{name: "truncated body", in: "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort", wantErr: "unexpected EOF"},
		{name: "truncated chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", wantErr: "unexpected EOF"},
		{name: "bad chunk size", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", wantErr: "chunk size"},
		{name: "HTTP/1.0", in: "HTTP/1.0 200 OK\r\n\r\n", wantErr: "status line"},
		{name: "no status code", in: "HTTP/1.1 OK\r\n\r\n", wantErr: "status line"},
		{name: "bad length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: "Content-Length"},
		{name: "gzip encoding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", wantErr: "Transfer-Encoding"},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbroken\r\n\r\n", wantErr: "header line"},
		{name: "nothing", in: "", wantErr: "EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.in))
			var body bytes.Buffer
			code, closeConn, err := readReply(br, &body)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(br)
			if code != tc.code || body.String() != tc.body || closeConn != tc.closeConn || string(rest) != tc.rest {
				t.Errorf("got %d %q close=%v rest %q, want %d %q close=%v rest %q", code, body.String(), closeConn, rest, tc.code, tc.body, tc.closeConn, tc.rest)
			}
		})
	}
}

// TestRawConnAgainstNetHTTP posts to a real net/http server: the requests
// reuse one connection, a chunked reply is read, a reply that closes the
// connection makes the next call dial again, and the server sees each
// request's body and headers as a net/http client would send them.
func TestRawConnAgainstNetHTTP(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.ContentLength != int64(len(b)) {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch r.URL.Path {
		case "/chunked":
			w.Write(b[:1])
			w.(http.Flusher).Flush() // forces chunked encoding
			w.Write(b[1:])
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write(b)
		default:
			w.Write(b)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	tg, err := parseTarget(srv.URL + "/echo?x=1")
	if err != nil {
		t.Fatal(err)
	}
	c := &rawConn{host: tg.host}
	defer c.close()
	var out bytes.Buffer
	for i, path := range []string{"/echo?x=1", "/chunked", "/echo", "/close", "/echo"} {
		body := []byte(`{"n":` + strings.Repeat("7", i+1) + `}`)
		code, err := c.post(context.Background(), path, body, 5*time.Second, &out)
		if err != nil || code != http.StatusOK || !bytes.Equal(out.Bytes(), body) {
			t.Fatalf("POST %s: %d %q %v, want 200 %q", path, code, out.Bytes(), err, body)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (one until the reply that closed it, one after)", n)
	}
}

// TestRawConnCancel: a call waiting on a server that never answers ends
// when its context is cancelled, long before its timeout.
func TestRawConnCancel(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	tg, _ := parseTarget(srv.URL)
	c := &rawConn{host: tg.host}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.post(ctx, "/", []byte("{}"), time.Minute, &bytes.Buffer{})
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("err %v after %s, want an error soon after the cancel", err, time.Since(start))
	}
	if c.conn != nil {
		t.Error("the connection stays open after a failed call")
	}
	if _, err := c.post(ctx, "/", []byte("{}"), time.Minute, &bytes.Buffer{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a call after the cancel: %v, want context.Canceled", err)
	}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct{ in, host, path string }{ // no host: an error
		{in: "http://127.0.0.1:5000/submit-task", host: "127.0.0.1:5000", path: "/submit-task"},
		{in: "http://h:1", host: "h:1", path: "/"},
		{in: "https://h:1/x"},
		{in: "127.0.0.1:5000/x"},
		{in: "http:///x"},
	} {
		got, err := parseTarget(tc.in)
		if tc.host == "" {
			if err == nil {
				t.Errorf("%q: no error", tc.in)
			}
			continue
		}
		if err != nil || got.host != tc.host || got.path != tc.path {
			t.Errorf("%q: %+v %v, want %s %s", tc.in, got, err, tc.host, tc.path)
		}
	}
}
