package slaveclient

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/faultproxy"
	"github.com/calclab/calclab/internal/freeport"
	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/slave"
	"github.com/calclab/calclab/services/taskstream"
)

// realSlave serves a real slave's API (no master) and returns its target
// and the slave.
func realSlave(t *testing.T) (dispatch.Target, *slave.Slave) {
	t.Helper()
	cfg := slave.Defaults()
	cfg.Master, cfg.Capacity = "", 2
	s, err := slave.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return dispatch.Target{ID: "s1", URL: srv.URL}, s
}

// slaveMetric is the value of an unlabelled metric of a slave.
func slaveMetric(t *testing.T, s *slave.Slave, name string) float64 {
	t.Helper()
	mfs, err := s.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("slave has no metric %s", name)
	return 0
}

// TestStreamAnswersAsHTTPDoes: on a real slave, the task stream gives the
// same answer as POST /compute and /compute/batch for results, evaluation
// errors, an expression over calc's length limit and the seed's poison
// expression.
func TestStreamAnswersAsHTTPDoes(t *testing.T) {
	tg, s := realSlave(t)
	exprs := []string{"4 * (2 + 3)", "1 / 0", "9**9**9**9", strings.Repeat("1+", 3000) + "1", "2 ** 0.5", "-7 % 3"}
	viaHTTP, viaStream := New(Config{NoStream: true}), New(Config{})
	ctx := context.Background()
	want, err := viaHTTP.ComputeBatch(ctx, tg, api.ComputeBatchRequest{Expressions: exprs}, "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := viaStream.ComputeBatch(ctx, tg, api.ComputeBatchRequest{Expressions: exprs}, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range exprs {
		w, g := want.Results[i], got.Results[i]
		if (w.Result == nil) != (g.Result == nil) || (w.Result != nil && *w.Result != *g.Result) || w.Error != g.Error {
			t.Errorf("%.30q: stream %s, HTTP %s", exprs[i], item(g), item(w))
		}
	}
	for i, e := range exprs {
		w, err := viaHTTP.Compute(ctx, tg, api.ComputeRequest{ID: "t", Expression: e}, "")
		if err != nil {
			t.Fatal(err)
		}
		g, err := viaStream.Compute(ctx, tg, api.ComputeRequest{ID: "t", Expression: e}, "")
		if err != nil {
			t.Fatal(err)
		}
		if g.ID != "t" || (w.Result == nil) != (g.Result == nil) || (w.Result != nil && *w.Result != *g.Result) || w.Error != g.Error {
			t.Errorf("compute %d: stream %+v, HTTP %+v", i, g, w)
		}
	}
	if n := slaveMetric(t, s, "calclab_slave_stream_expressions_total"); n != float64(2*len(exprs)) {
		t.Fatalf("the slave read %v expressions on its stream, want %d (the stream was not used)", n, 2*len(exprs))
	}
	if n := slaveMetric(t, s, "calclab_slave_streams_open"); n != 1 {
		t.Fatalf("%v streams open, want the one stream shared by every call", n)
	}
}

// TestStreamCarriesTheRequestID: the slave's log names the master's
// request id for an expression it got on the stream, as it does for an
// HTTP call, so one task is followed in both logs.
func TestStreamCarriesTheRequestID(t *testing.T) {
	var logs testcluster.LockedBuffer
	cfg := slave.Defaults()
	cfg.Master, cfg.Capacity = "", 1
	cfg.Logger = slog.New(httpserve.ContextHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	s, err := slave.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	tg := dispatch.Target{ID: "s1", URL: srv.URL}
	if _, err := New(Config{}).Compute(context.Background(), tg, api.ComputeRequest{Expression: "6 * 7"}, "rid-42"); err != nil {
		t.Fatal(err)
	}
	found := false
	for line := range strings.SplitSeq(logs.String(), "\n") {
		found = found || (strings.Contains(line, `"evaluated on the task stream"`) && strings.Contains(line, `"request_id":"rid-42"`))
	}
	if !found {
		t.Fatalf("the slave's log does not name request id rid-42:\n%s", logs.String())
	}
	if slaveMetric(t, s, "calclab_slave_stream_expressions_total") != 1 {
		t.Fatal("the expression did not travel on the stream")
	}
}

func item(it api.BatchItem) string {
	if it.Result != nil {
		return fmt.Sprint(*it.Result)
	}
	return fmt.Sprintf("error %q", it.Error)
}

// TestStreamCallsShareOneConnection: many concurrent calls travel on one
// connection, each gets its own answer, and frames queued together reach
// the slave in one group.
func TestStreamCallsShareOneConnection(t *testing.T) {
	tg, s := realSlave(t)
	c := New(Config{})
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: fmt.Sprintf("%d * 2", i)}, "")
			switch {
			case err != nil:
				errs <- err
			case r.Result == nil || *r.Result != float64(2*i):
				errs <- fmt.Errorf("%d * 2 answered %+v", i, r)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if open := slaveMetric(t, s, "calclab_slave_streams_open"); open != 1 {
		t.Fatalf("%v streams open for %d concurrent calls, want 1", open, n)
	}
	groups, exprs := slaveMetric(t, s, "calclab_slave_stream_groups_total"), slaveMetric(t, s, "calclab_slave_stream_expressions_total")
	if exprs != n || groups >= exprs {
		t.Fatalf("slave read %v expressions in %v groups: want %d in fewer groups", exprs, groups, n)
	}
}

// TestStreamFallsBackToHTTPForASlaveWithoutIt: a slave that does not
// upgrade (an older one) gets HTTP calls, and is not asked again at once.
func TestStreamFallsBackToHTTPForASlaveWithoutIt(t *testing.T) {
	var upgrades, batches atomic.Int32
	tg := target(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case taskstream.Path:
			upgrades.Add(1)
			answer(404, `{"error": "no such endpoint: GET /compute/stream"}`)(w, r)
		case "/compute/batch":
			batches.Add(1)
			answer(200, `{"results": [{"result": 3}]}`)(w, r)
		default:
			answer(200, `{"result": 3}`)(w, r)
		}
	})
	c := New(Config{})
	for range 3 {
		r, err := c.ComputeBatch(context.Background(), tg, api.ComputeBatchRequest{Expressions: []string{"1+2"}}, "")
		if err != nil || *r.Results[0].Result != 3 {
			t.Fatalf("%+v, %v", r, err)
		}
	}
	if upgrades.Load() != 1 || batches.Load() != 3 {
		t.Fatalf("%d upgrade requests and %d batch calls, want 1 and 3", upgrades.Load(), batches.Load())
	}
}

// fakeStream is a fake slave whose task stream misbehaves as serve says;
// it counts the streams opened.
func fakeStream(t *testing.T, serve func(conn net.Conn, r *bufio.Reader)) (dispatch.Target, *atomic.Int32) {
	t.Helper()
	var opened atomic.Int32
	return target(t, func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		opened.Add(1)
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + taskstream.Protocol + "\r\n\r\n")
		_ = rw.Flush()
		serve(conn, rw.Reader)
	}), &opened
}

// answerAll answers every request with its length, until the stream ends.
func answerAll(conn net.Conn, r *bufio.Reader) {
	for {
		req, err := taskstream.ReadRequest(r, 1<<16)
		if err != nil {
			return
		}
		if _, err := conn.Write(taskstream.AppendResult(nil, req.ID, float64(len(req.Expr)))); err != nil {
			return
		}
	}
}

// TestBrokenStreamsAreTheSlavesFault: a stream that closes, stalls, or
// answers what is not a frame fails the call in the way the dispatcher
// reads (the task runs elsewhere), and the next call opens a new stream.
func TestBrokenStreamsAreTheSlavesFault(t *testing.T) {
	tests := []struct {
		name  string
		serve func(net.Conn, *bufio.Reader)
		want  string
		kind  Kind
	}{
		{"closed after reading", func(_ net.Conn, r *bufio.Reader) { _, _ = taskstream.ReadRequest(r, 1<<16) }, "slave", KindTransport},
		{"an answer of an unknown kind", func(c net.Conn, r *bufio.Reader) {
			req, _ := taskstream.ReadRequest(r, 1<<16)
			_, _ = c.Write([]byte{byte(req.ID), 7, 0, 0})
			time.Sleep(time.Second)
		}, "slave", KindMalformed},
		{"no answer", func(_ net.Conn, r *bufio.Reader) {
			_, _ = taskstream.ReadRequest(r, 1<<16)
			time.Sleep(time.Second)
		}, "suspect", KindTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			tg, opened := fakeStream(t, func(c net.Conn, r *bufio.Reader) {
				if calls.Add(1) == 1 {
					tc.serve(c, r)
					return
				}
				answerAll(c, r)
			})
			c := New(Config{TaskTimeout: 300 * time.Millisecond})
			_, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "1+2"}, "")
			var e *Error
			if got := classify(err); got != tc.want || !errors.As(err, &e) || e.Kind != tc.kind {
				t.Fatalf("got %v (%s), want a %s fault of kind %s", err, got, tc.want, tc.kind)
			}
			r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "1+2"}, "")
			if err != nil || r.Result == nil || *r.Result != 3 {
				t.Fatalf("the call after a broken stream: %+v, %v", r, err)
			}
			if opened.Load() != 2 {
				t.Fatalf("%d streams opened, want 2 (a new one after the broken one)", opened.Load())
			}
		})
	}
}

// TestASilentStreamIsClosedAndTheNextCallDialsAgain: when the slave's end
// of a stream goes silent (a fake of its VM killed and replaced, package
// faultproxy: the old connection's bytes are swallowed, new ones go through), the call waiting on it times
// out once; the stream is then closed as dead, so the next call dials a
// new one and gets its answer instead of timing out on the old stream
// until the kernel gives up on it. A CI run on QEMU VMs saw the old way:
// after slave-2's VM came back, every task tried on it timed out and ran
// on slave-1.
func TestASilentStreamIsClosedAndTheNextCallDialsAgain(t *testing.T) {
	tg, _ := realSlave(t)
	p := faultproxy.New(t, strings.TrimPrefix(tg.URL, "http://"))
	tg.URL = "http://" + p.Addr()
	const timeout = 300 * time.Millisecond
	c := New(Config{TaskTimeout: timeout})
	compute := func(expr string) (api.ComputeResponse, error, time.Duration) {
		start := time.Now()
		r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: expr}, "")
		return r, err, time.Since(start)
	}
	if r, err, _ := compute("6 * 7"); err != nil || r.Result == nil || *r.Result != 42 {
		t.Fatalf("before: %+v, %v", r, err)
	}
	p.Silence()
	_, err, _ := compute("6 * 7")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindTimeout || !strings.Contains(err.Error(), "closed as dead") {
		t.Fatalf("on the silent stream: %v, want a timeout that closed the stream", err)
	}
	for i := range 3 {
		r, err, took := compute("6 * 7")
		if err != nil || r.Result == nil || *r.Result != 42 {
			t.Fatalf("call %d after the stream went silent: %+v, %v (after %s)", i, r, err, took)
		}
		if took >= timeout {
			t.Errorf("call %d took %s, as long as a timeout", i, took)
		}
	}
	if got := p.Opened(); got != 2 {
		t.Errorf("%d connections opened through the proxy, want 2 (one new stream)", got)
	}
}

// TestAStreamThatAnswersOthersStaysOpen: a call that times out while other
// answers keep coming on its stream is slow, not a sign of a dead stream:
// the stream stays open and the calls on it are not failed.
func TestAStreamThatAnswersOthersStaysOpen(t *testing.T) {
	tg, opened := fakeStream(t, func(c net.Conn, r *bufio.Reader) {
		for {
			req, err := taskstream.ReadRequest(r, 1<<16)
			if err != nil {
				return
			}
			if req.Expr == "slow" {
				continue // never answered
			}
			if _, err := c.Write(taskstream.AppendResult(nil, req.ID, float64(len(req.Expr)))); err != nil {
				return
			}
		}
	})
	c := New(Config{TaskTimeout: 300 * time.Millisecond})
	slow := make(chan error, 1)
	go func() {
		_, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "slow"}, "")
		slow <- err
	}()
	deadline := time.After(2 * time.Second)
	for n := 0; ; n++ {
		r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "1+2"}, "")
		if err != nil || r.Result == nil || *r.Result != 3 {
			t.Fatalf("call %d beside the slow one: %+v, %v", n, r, err)
		}
		select {
		case err := <-slow:
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindTimeout || strings.Contains(err.Error(), "closed") {
				t.Fatalf("the slow call: %v, want a timeout that left the stream open", err)
			}
			if r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "1+2"}, ""); err != nil || opened.Load() != 1 {
				t.Fatalf("after the slow call: %+v, %v, %d streams opened, want the same one", r, err, opened.Load())
			}
			return
		case <-deadline:
			t.Fatal("the slow call did not time out")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestAStreamTheSlaveDoesNotReadIsBounded: requests queued for a slave
// that stopped reading pile up only to the backlog bound; past it a call
// fails at once instead of queueing more.
func TestAStreamTheSlaveDoesNotReadIsBounded(t *testing.T) {
	near, far := net.Pipe() // nobody reads far: the writer blocks
	defer far.Close()
	st := &stream{rwc: near, kick: make(chan struct{}, 1)}
	go st.writeLoop()
	defer st.close(errors.New("test over"))
	const bound = 64 << 10
	expr := strings.Repeat("1+", 500) + "1"
	var err error
	sent := 0
	for ; err == nil && sent < 1000; sent++ {
		cl := newCall(1)
		_, _, err = st.send(cl, []string{expr}, "", bound)
	}
	if err == nil || !strings.Contains(err.Error(), "has not read") {
		t.Fatalf("after %d unread requests: %v, want the backlog refused", sent, err)
	}
	st.mu.Lock()
	queued := len(st.out)
	st.mu.Unlock()
	if queued > bound+len(expr)+32 {
		t.Errorf("%d bytes queued, bound %d", queued, bound)
	}
}

// TestCallsToAStoppingSlaveAreRightOrFailOver: while a slave stops under
// load, every call either gets its right answer or fails as the slave's
// fault (the dispatcher runs it elsewhere); none gets a wrong answer or
// hangs.
func TestCallsToAStoppingSlaveAreRightOrFailOver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serveSlave(t, ln)
	tg := dispatch.Target{ID: "s1", URL: "http://" + ln.Addr().String()}
	c := New(Config{})
	if _, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "1"}, ""); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var ok, failed atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Expressions that take a little while, so the slave is busy
			// when it is told to stop.
			expr := fmt.Sprintf("%d + %s0", i, strings.Repeat("0*", 400))
			r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: expr}, "")
			switch {
			case err != nil:
				if f, _ := FaultOf(err); f != FaultSlave {
					t.Errorf("call %d failed as %q, want the slave's fault: %v", i, f, err)
				}
				failed.Add(1)
			case r.Result == nil || *r.Result != float64(i):
				t.Errorf("call %d answered %+v, want %d", i, r, i)
			default:
				ok.Add(1)
			}
		})
	}
	// Stop once the slave is answering, with most calls still to come.
	for deadline := time.Now().Add(5 * time.Second); ok.Load() < 20 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Microsecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	wg.Wait()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d answered, %d failed over to another slave", ok.Load(), failed.Load())
	if ok.Load() == 0 {
		t.Fatal("no call was answered")
	}
}

// TestACallAfterTheSlaveRestartedSucceeds: a stream that broke while idle
// (the slave restarted) is not held against the slave: the next call goes
// on a new stream and gets its answer.
func TestACallAfterTheSlaveRestartedSucceeds(t *testing.T) {
	// The slave listens again on its address after each stop: a port
	// outside the kernel's ephemeral range, which no outgoing connection
	// can take in between.
	port, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := serveSlave(t, ln)
	tg := dispatch.Target{ID: "s1", URL: "http://" + addr}
	c := New(Config{})
	for round := range 3 {
		r, err := c.Compute(context.Background(), tg, api.ComputeRequest{Expression: "6 * 7"}, "")
		if err != nil || r.Result == nil || *r.Result != 42 {
			t.Fatalf("round %d: %+v, %v", round, r, err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", addr); err != nil {
			t.Fatal(err)
		}
		stop = serveSlave(t, ln)
	}
}

// serveSlave serves a real slave of capacity 1 (no master) on ln until the
// returned stop, which returns Serve's error (the test's end stops it too).
func serveSlave(t *testing.T, ln net.Listener) (stop func() error) {
	t.Helper()
	cfg := slave.Defaults()
	cfg.Master, cfg.Capacity = "", 1
	s, err := slave.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() { cancel(); serr = <-served })
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// TestStreamMatchesAnswersToCalls: answers in any order reach their own
// call and expression; an answer to a forgotten call, a repeated answer and
// an id never sent change nothing; finished calls leave the pending list
// even while an older call still waits.
func TestStreamMatchesAnswersToCalls(t *testing.T) {
	st := &stream{kick: make(chan struct{}, 1)}
	send := func(c *call) uint64 {
		exprs := make([]string, len(c.items))
		for i := range exprs {
			exprs[i] = "1"
		}
		base, _, err := st.send(c, exprs, "", 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return base
	}
	slow, batch, lost := newCall(1), newCall(3), newCall(2)
	slowBase, batchBase, lostBase := send(slow), send(batch), send(lost)
	st.forget(lostBase, 0)
	for _, a := range []taskstream.Answer{
		{ID: batchBase + 2, Result: 30},
		{ID: lostBase, Result: 99},       // forgotten: ignored
		{ID: batchBase, Error: "bad"},    // an error in place
		{ID: batchBase + 2, Result: -1},  // repeated: ignored
		{ID: lostBase + 100, Result: -2}, // never sent: ignored
		{ID: batchBase + 1, Result: 20},
	} {
		st.answer(a)
	}
	select {
	case <-batch.done:
	default:
		t.Fatal("the batch call did not finish with all its answers in")
	}
	if batch.items[0].Error != "bad" || *batch.items[1].Result != 20 || *batch.items[2].Result != 30 {
		t.Fatalf("batch answers in the wrong places: %+v %v %v", batch.items[0], batch.items[1].Result, batch.items[2].Result)
	}
	if lost.items[0].Result != nil || lost.left != 2 {
		t.Fatal("a forgotten call took an answer")
	}
	// Many calls come and go while the slow one waits: the list stays short.
	for range 1000 {
		c := newCall(1)
		st.answer(taskstream.Answer{ID: send(c), Result: 1})
	}
	st.mu.Lock()
	n, live := len(st.pending), st.live
	st.mu.Unlock()
	if live != 1 || n > 100 {
		t.Fatalf("%d calls pending (%d live) after 1000 finished behind a slow one", n, live)
	}
	st.answer(taskstream.Answer{ID: slowBase, Result: 7})
	if *slow.items[0].Result != 7 || len(st.pending) != 0 {
		t.Fatalf("slow call: %v, %d pending", slow.items[0].Result, len(st.pending))
	}
}
