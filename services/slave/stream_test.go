package slave

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/services/taskstream"
)

// openStream connects to a slave's task stream with a raw upgrade.
func openStream(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", taskstream.Path, taskstream.Protocol)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %d", res.StatusCode)
	}
	return conn, r
}

// serve runs a slave with cfg (no master) on a loopback port until the
// returned stop is called; stop returns Serve's error.
func serve(t *testing.T, cfg Config) (*Slave, string, func() error) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	var once sync.Once
	var err2 error
	stop := func() error {
		once.Do(func() { cancel(); err2 = <-served })
		return err2
	}
	t.Cleanup(func() { _ = stop() })
	return s, ln.Addr().String(), stop
}

// TestAStoppingSlaveAnswersEveryRequestItRead: a slave told to stop
// finishes the groups it has read from its task stream, writes every one
// of their answers, and only then closes the stream.
func TestAStoppingSlaveAnswersEveryRequestItRead(t *testing.T) {
	cfg := Defaults()
	cfg.Master, cfg.Capacity = "", 1
	s, addr, stop := serve(t, cfg)
	conn, r := openStream(t, addr)

	const n = 3000
	var frames []byte
	for i := range n {
		frames = taskstream.AppendRequest(frames, uint64(i), fmt.Sprintf("%d + %s0", i, strings.Repeat("0*", 300)), "")
	}
	if _, err := conn.Write(frames); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); s.streamExprs == nil || readCount(s) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the slave read nothing")
		}
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	answered := 0
	for {
		a, err := taskstream.ReadAnswer(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d answers: %v", answered, err)
		}
		if a.Error != "" || a.Result != float64(a.ID) {
			t.Fatalf("request %d answered %+v", a.ID, a)
		}
		answered++
	}
	conn.Close()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	if read := readCount(s); answered != read || answered == 0 || answered == n {
		t.Fatalf("the slave read %d of %d requests and answered %d: want every one it read answered, and the stop to come before the end", read, n, answered)
	}
	t.Logf("read and answered %d of %d requests before closing", answered, n)
}

func readCount(s *Slave) int {
	mfs, _ := s.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "calclab_slave_stream_expressions_total" {
			return int(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return 0
}

// TestStreamEndpointRefusesAPlainRequest: GET /compute/stream without the
// upgrade is a 426 naming the protocol, as JSON.
func TestStreamEndpointRefusesAPlainRequest(t *testing.T) {
	_, addr, _ := serve(t, Config{Master: ""})
	res, err := http.Get("http://" + addr + taskstream.Path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUpgradeRequired || res.Header.Get("Upgrade") != taskstream.Protocol ||
		!strings.Contains(string(body), `"error":"GET /compute/stream is the master's task stream`) {
		t.Fatalf("%d %s %s", res.StatusCode, res.Header.Get("Upgrade"), body)
	}
}

// TestStreamAnswersEveryRequestOnceWhateverItsGroup: groups of a few short
// expressions (evaluated on the stream's reader) and larger ones (in
// goroutines of their own), alone or mixed, valid or not: every request is
// answered once, with its own value or error.
func TestStreamAnswersEveryRequestOnceWhateverItsGroup(t *testing.T) {
	short := func(i int) string { return fmt.Sprintf("%d * 2 - %d", i, i) }                     // i
	long := func(i int) string { return fmt.Sprintf("%d + %s0", i, strings.Repeat("0*", 200)) } // i
	for _, tc := range []struct {
		name     string
		n        int
		expr     func(i int) string
		oneByOne bool // each request written alone, its answer read before the next
	}{
		{"short, one by one", 50, short, true},
		{"short, all at once", 2000, short, false},
		{"long, all at once", 300, long, false},
		{"mixed, with invalid ones", 1000, func(i int) string {
			switch i % 3 {
			case 0:
				return long(i)
			case 1:
				return short(i)
			}
			return "(" // invalid
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Master, cfg.Capacity = "", 2
			_, addr, _ := serve(t, cfg)
			conn, r := openStream(t, addr)
			check := func(a taskstream.Answer, seen map[uint64]bool) {
				t.Helper()
				i := int(a.ID)
				switch {
				case a.ID >= uint64(tc.n) || seen[a.ID]:
					t.Fatalf("answer for id %d: unknown or repeated", a.ID)
				case tc.expr(i) == "(" && a.Error == "":
					t.Fatalf("invalid request %d answered %v", i, a.Result)
				case tc.expr(i) != "(" && (a.Error != "" || a.Result != float64(i)):
					t.Fatalf("request %d answered %+v", i, a)
				}
				seen[a.ID] = true
			}
			seen := map[uint64]bool{}
			var frames []byte
			for i := range tc.n {
				frames = taskstream.AppendRequest(frames, uint64(i), tc.expr(i), "")
				if !tc.oneByOne {
					continue
				}
				if _, err := conn.Write(frames); err != nil {
					t.Fatal(err)
				}
				frames = frames[:0]
				a, err := taskstream.ReadAnswer(r)
				if err != nil {
					t.Fatal(err)
				}
				check(a, seen)
			}
			if len(frames) > 0 {
				go conn.Write(frames) // the slave answers while we still write
			}
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for len(seen) < tc.n {
				a, err := taskstream.ReadAnswer(r)
				if err != nil {
					t.Fatalf("after %d answers: %v", len(seen), err)
				}
				check(a, seen)
			}
		})
	}
}
