package master_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/services/master"
)

func hostOf(t *testing.T, url string) string {
	t.Helper()
	return strings.TrimPrefix(url, "http://")
}

// TestNeverEndingBodyIsCutAtTheBodyDeadline: a chunked body that never
// ends gets a 408 and its connection back, at the body deadline.
func TestNeverEndingBodyIsCutAtTheBodyDeadline(t *testing.T) {
	c := startCluster(t, 0, func(cfg *master.Config) { cfg.BodyTimeout = 300 * time.Millisecond })
	conn, err := net.Dial("tcp", hostOf(t, c.master))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /submit-task HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"pay\r\n")
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a never-ending body within 5s (body deadline 300ms): %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestTimeout || !bytes.Contains(body, []byte("not received in time")) {
		t.Fatalf("never-ending body: %d %s, want 408", res.StatusCode, body)
	}
}

// TestMasterLimitsConnections: past MaxConns, a new connection waits until
// one is closed.
func TestMasterLimitsConnections(t *testing.T) {
	c := startCluster(t, 0, func(cfg *master.Config) { cfg.MaxConns = 2 })
	var held []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", hostOf(t, c.master))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		held = append(held, conn)
	}
	time.Sleep(100 * time.Millisecond)
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if res, err := client.Get(c.master + "/health"); err == nil {
		res.Body.Close()
		t.Fatal("a third connection was served while two were held and the limit is 2")
	}
	held[0].Close()
	client.Timeout = 5 * time.Second
	res, err := client.Get(c.master + "/health")
	if err != nil {
		t.Fatalf("after a held connection closed: %v", err)
	}
	res.Body.Close()
}

// TestOversizedBatchIsRefusedWhileDecoding: /submit-batch counts while it
// decodes and answers 413 as soon as the count passes the limit, before the
// rest of the body has even been sent; the client reads the 413.
func TestOversizedBatchIsRefusedWhileDecoding(t *testing.T) {
	c := startCluster(t, 0, func(cfg *master.Config) { cfg.MaxBatch = 1000 })
	pr, pw := io.Pipe()
	const hold = 3 * time.Second
	go func() {
		_, _ = io.WriteString(pw, `{"expressions": [`+strings.Repeat(`"1+1", `, 2000))
		// ... and the rest of the body comes only after a while.
		time.Sleep(hold)
		_, _ = io.WriteString(pw, `"1"]}`)
		pw.Close()
	}()
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, c.master+"/submit-batch", pr)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("oversized batch: %v, want a 413", err)
	}
	defer res.Body.Close()
	if took := time.Since(start); took >= hold {
		t.Fatalf("the 413 came after %s, once the whole body was sent: the batch was not refused while decoding", took)
	}
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "1000") {
		t.Fatalf("oversized batch: %d %s; want 413 naming the limit 1000", res.StatusCode, body)
	}
}

// TestOversizedBodyGets413NotAReset: a client that sends a body over the
// limit reads the 413 (the master drains before closing), over and over.
func TestOversizedBodyGets413NotAReset(t *testing.T) {
	c := startCluster(t, 0, nil)
	big := bytes.Repeat([]byte("x"), 8<<20)
	tests := []struct {
		name    string
		path    string
		chunked bool
	}{
		{"task with a Content-Length", "/submit-task", false},
		{"task chunked", "/submit-task", true},
		{"batch with a Content-Length", "/submit-batch?x=1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for i := range 3 {
				var body io.Reader = bytes.NewReader(big)
				if tc.chunked {
					body = io.MultiReader(bytes.NewReader(big)) // no length: chunked
				}
				path := tc.path
				if strings.HasPrefix(path, "/submit-batch") {
					body = io.MultiReader(strings.NewReader(`{"expressions": ["`), bytes.NewReader(bytes.Repeat([]byte("1"), 20<<20)), strings.NewReader(`"]}`))
					if !tc.chunked {
						b, _ := io.ReadAll(body)
						body = bytes.NewReader(b)
					}
				}
				res, err := http.Post(c.master+path, "application/json", body)
				if err != nil {
					t.Fatalf("try %d: %v (want the 413, not a reset)", i, err)
				}
				res.Body.Close()
				if res.StatusCode != http.StatusRequestEntityTooLarge {
					t.Fatalf("try %d: %d, want 413", i, res.StatusCode)
				}
			}
		})
	}
}
