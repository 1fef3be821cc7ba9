package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
)

// The expression of request number seq, and its value: distinct for every
// request so that no cache anywhere can help.
const exprTail = " * (2 + 3) - 7 / 2"

func appendExpr(b []byte, seq int64) []byte {
	b = strconv.AppendInt(b, seq, 10)
	return append(b, exprTail...)
}

func expected(seq int64) float64 { return float64(seq)*5 - 3.5 }

func sameFloat(got, want float64) bool {
	return math.Abs(got-want) <= 1e-9*math.Max(1, math.Abs(want))
}

// worker is the per-goroutine state of the load generator: buffers are
// reused from one request to the next.
type worker struct {
	client *http.Client // batches
	raw    rawConn      // one-task requests
	ctx    context.Context
	body   []byte
	buf    bytes.Buffer
	one    oneReply
	many   batchReply

	lat      []int64 // ns, successful measured requests
	latSched []int64 // open loop: ns from the scheduled send time
	reqs     int64   // measured requests
	good     int64   // measured items (tasks or expressions) verified right
	bad      int64   // measured items that failed
	warmBad  int64
	lastDone time.Time
	// sent and recvd bracket the last HTTP exchange: from just before the
	// call to the end of the reply body (no JSON building or checking).
	sent, recvd time.Time
}

func (w *worker) latency() int64 { return int64(w.recvd.Sub(w.sent)) }

// record accounts the outcome of one request: of a warm-up request only
// its failures, of a measured one its items, its latency when all were
// right, and when it completed. It returns whether the latency was kept.
func (w *worker) record(measured bool, good, bad int64, err error, errs *benchkit.ErrLog) bool {
	if !measured {
		w.warmBad += bad
		if err != nil {
			errs.Add("warm-up: ", err)
		}
		return false
	}
	w.reqs++
	w.good += good
	w.bad += bad
	if bad == 0 {
		w.lat = append(w.lat, w.latency())
	}
	if err != nil {
		errs.Add("", err)
	}
	w.lastDone = time.Now()
	return bad == 0
}

// oneReply holds the fields we check in a slave's ComputeResponse and in
// the master's Task (both carry "result"; the task also "status").
type oneReply struct {
	Result float64 `json:"result"`
	Status string  `json:"status"`
	Error  string  `json:"error"`
}

type batchReply struct {
	Count   int `json:"count"`
	Failed  int `json:"failed"`
	Results []struct {
		Result float64 `json:"result"`
		Error  string  `json:"error"`
	} `json:"results"`
}

func (w *worker) post(url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(w.ctx, http.MethodPost, url, bytes.NewReader(w.body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	w.buf.Reset()
	w.sent = time.Now()
	res, err := w.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	_, err = w.buf.ReadFrom(res.Body)
	w.recvd = time.Now()
	res.Body.Close()
	if err != nil {
		return res.StatusCode, nil, fmt.Errorf("read reply: %w", err)
	}
	return res.StatusCode, w.buf.Bytes(), nil
}

// postRaw is post on the worker's rawConn, which it dials to t's host
// when it has none (or one to another host).
func (w *worker) postRaw(t rawTarget) (int, []byte, error) {
	if w.raw.conn != nil && w.raw.host != t.host {
		w.raw.close()
	}
	w.raw.host = t.host
	w.sent = time.Now()
	code, err := w.raw.post(w.ctx, t.path, w.body, w.client.Timeout, &w.buf)
	w.recvd = time.Now()
	if err != nil {
		return code, nil, err
	}
	return code, w.buf.Bytes(), nil
}

// job sends request number seq and verifies the reply: it returns how many
// items were right and how many wrong, and the first problem.
type job func(w *worker, seq int64) (good, bad int64, err error)

// singleJob posts {"<field>": "<expr>"} to url, on the worker's rawConn.
// withStatus: the reply is a master task, which must also say "completed".
func singleJob(url, field string, withStatus bool) job {
	head := `{"` + field + `":"`
	t, perr := parseTarget(url)
	return func(w *worker, seq int64) (int64, int64, error) {
		if perr != nil {
			return 0, 1, perr
		}
		w.body = append(w.body[:0], head...)
		w.body = appendExpr(w.body, seq)
		w.body = append(w.body, `"}`...)
		code, data, err := w.postRaw(t)
		if err != nil {
			return 0, 1, err
		}
		if code != http.StatusOK {
			return 0, 1, fmt.Errorf("HTTP %d: %s", code, benchkit.Snippet(data))
		}
		w.one = oneReply{}
		if err := json.Unmarshal(data, &w.one); err != nil {
			return 0, 1, fmt.Errorf("decode reply: %v: %s", err, benchkit.Snippet(data))
		}
		if withStatus && w.one.Status != "completed" {
			return 0, 1, fmt.Errorf("task status %q (error %q)", w.one.Status, w.one.Error)
		}
		if want := expected(seq); !sameFloat(w.one.Result, want) {
			return 0, 1, fmt.Errorf("wrong result for %q: got %v, want %v (reply %s)", appendExpr(nil, seq), w.one.Result, want, benchkit.Snippet(data))
		}
		return 1, 0, nil
	}
}

// batchJob posts size expressions, numbered from seq, to url.
func batchJob(url string, size int) job {
	return func(w *worker, seq int64) (int64, int64, error) {
		w.body = append(w.body[:0], `{"expressions":[`...)
		for k := range size {
			if k > 0 {
				w.body = append(w.body, ',')
			}
			w.body = append(w.body, '"')
			w.body = appendExpr(w.body, seq+int64(k))
			w.body = append(w.body, '"')
		}
		w.body = append(w.body, "]}"...)
		n := int64(size)
		code, data, err := w.post(url)
		if err != nil {
			return 0, n, err
		}
		if code != http.StatusOK {
			return 0, n, fmt.Errorf("HTTP %d: %s", code, benchkit.Snippet(data))
		}
		if good, bad, first, ok := checkBatchFast(data, seq, size); ok {
			return good, bad, first
		}
		// Not the shape checkBatchFast reads: encoding/json says what it is.
		return w.checkBatchJSON(data, seq, size)
	}
}

// checkBatchJSON is checkBatchFast with encoding/json, for any reply.
func (w *worker) checkBatchJSON(data []byte, seq int64, size int) (good, bad int64, first error) {
	n := int64(size)
	// Unmarshal reuses the slice's elements without zeroing them.
	r := w.many.Results[:cap(w.many.Results)]
	clear(r)
	w.many = batchReply{Results: r[:0]}
	if err := json.Unmarshal(data, &w.many); err != nil {
		return 0, n, fmt.Errorf("decode reply: %v: %s", err, benchkit.Snippet(data))
	}
	if len(w.many.Results) != size || w.many.Count != size {
		return 0, n, fmt.Errorf("batch of %d answered with count %d and %d results", size, w.many.Count, len(w.many.Results))
	}
	for k, it := range w.many.Results {
		want := expected(seq + int64(k))
		if it.Error != "" || !sameFloat(it.Result, want) {
			bad++
			if first == nil {
				first = fmt.Errorf("batch item %q: result %v, error %q, want %v", appendExpr(nil, seq+int64(k)), it.Result, it.Error, want)
			}
		}
	}
	if first == nil && w.many.Failed != 0 {
		first = fmt.Errorf("batch reply says failed=%d but every result is right", w.many.Failed)
	}
	return n - bad, bad, first
}

// runStats is the outcome of one load run's measurement window.
type runStats struct {
	requests  int64
	good, bad int64
	warmBad   int64
	wall      time.Duration // measurement window, to the last completion
	lat       []int64       // sorted, ns
	latSched  []int64       // open loop only, sorted
	errs      []string
	sent      int64   // open loop only: measured requests sent
	achieved  float64 // open loop: requests/s actually sent
	// pcts are the percentiles wrk reported, when lat is empty (a wrk run).
	pcts map[float64]time.Duration
	// cores is the CPU used during the measured window, in cores, by
	// column of the CPU table (cpuCols); a column not measured is absent.
	cores map[string]float64
}

// pct is the p-th percentile of the latencies; of a wrk run, the one wrk
// reported (0 when it did not report p).
func (s *runStats) pct(p float64) time.Duration {
	if len(s.lat) == 0 && s.pcts != nil {
		return s.pcts[p]
	}
	return pctOf(s.lat, p)
}

// hasLatency says whether there are latencies to report.
func (s *runStats) hasLatency() bool { return len(s.lat) > 0 || len(s.pcts) > 0 }

// pctOf is the p-th percentile of sorted nanoseconds.
func pctOf(sorted []int64, p float64) time.Duration {
	return time.Duration(benchkit.Percentile(sorted, p))
}

func (s *runStats) rate() float64 {
	if s.wall <= 0 {
		return 0
	}
	return float64(s.good) / s.wall.Seconds()
}

func newWorkers(ctx context.Context, client *http.Client, n int, capHint int) []*worker {
	ws := make([]*worker, n)
	for i := range ws {
		ws[i] = &worker{client: client, ctx: ctx, lat: make([]int64, 0, capHint)}
	}
	return ws
}

func closeRaw(ws []*worker) {
	for _, w := range ws {
		w.raw.close()
	}
}

func merge(ws []*worker, mStart time.Time, dur time.Duration, errs *benchkit.ErrLog) *runStats {
	st := &runStats{}
	last := mStart.Add(dur)
	for _, w := range ws {
		st.requests += w.reqs
		st.good += w.good
		st.bad += w.bad
		st.warmBad += w.warmBad
		st.lat = append(st.lat, w.lat...)
		st.latSched = append(st.latSched, w.latSched...)
		if w.lastDone.After(last) {
			last = w.lastDone
		}
	}
	st.wall = last.Sub(mStart)
	slices.Sort(st.lat)
	slices.Sort(st.latSched)
	st.errs = errs.Samples()
	return st
}

// window runs onStart when the measurement window opens (after warm-up)
// and, if it opened, onEnd when the run is over.
type window struct {
	timer *time.Timer
	done  chan struct{}
}

func openWindow(after time.Duration, onStart func()) *window {
	w := &window{done: make(chan struct{})}
	w.timer = time.AfterFunc(after, func() {
		onStart()
		close(w.done)
	})
	return w
}

func (w *window) close(onEnd func()) {
	if w.timer.Stop() {
		return // interrupted during warm-up: the window never opened
	}
	<-w.done
	onEnd()
}

// phases are the hooks a load run calls when its measurement window opens
// and closes (CPU accounting).
type phases struct {
	onStart func()
	onEnd   func()
}

// runClosed is a closed loop: conc workers each send a request, wait for the
// reply, and send the next. Requests started during warm-up are not
// measured; none starts after the window closes. seq hands out request
// numbers, step at a time (batch: step = batch size).
func runClosed(ctx context.Context, client *http.Client, conc int, warmup, dur time.Duration, seq *atomic.Int64, step int64, do job, ph phases) *runStats {
	ws := newWorkers(ctx, client, conc, 1<<14)
	var errs benchkit.ErrLog
	start := time.Now()
	mStart, end := start.Add(warmup), start.Add(warmup+dur)
	win := openWindow(warmup, ph.onStart)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				n := seq.Add(step) - step
				good, bad, err := do(w, n)
				if ctx.Err() != nil {
					return
				}
				w.record(!t0.Before(mStart), good, bad, err, &errs)
			}
		})
	}
	wg.Wait()
	win.close(ph.onEnd)
	closeRaw(ws)
	return merge(ws, mStart, dur, &errs)
}

type tick struct {
	seq      int64
	at       time.Time
	measured bool
}

// runOpen is an open loop: a pacer schedules a request every 1/rate and
// hands it to a bounded pool of goroutines. If the whole pool is busy the
// pacer waits (which lowers the achieved rate, reported).
// Latency is measured from the actual send; latSched from the scheduled
// time, which includes any lag of the sender.
func runOpen(ctx context.Context, client *http.Client, rate float64, pool int, warmup, dur time.Duration, seq *atomic.Int64, do job, ph phases) *runStats {
	ws := newWorkers(ctx, client, pool, 0)
	var errs benchkit.ErrLog
	jobs := make(chan tick)
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Go(func() {
			for t := range jobs {
				good, bad, err := do(w, t.seq)
				if ctx.Err() != nil {
					continue
				}
				if w.record(t.measured, good, bad, err, &errs) {
					w.latSched = append(w.latSched, int64(w.recvd.Sub(t.at)))
				}
			}
		})
	}
	interval := float64(time.Second) / rate
	start := time.Now()
	mStart, end := start.Add(warmup), start.Add(warmup+dur)
	win := openWindow(warmup, ph.onStart)
	var sent int64
	lastSend := mStart
pace:
	for n := int64(0); ; n++ {
		at := start.Add(time.Duration(float64(n) * interval))
		if !at.Before(end) {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		}
		t := tick{seq: seq.Add(1) - 1, at: at, measured: !at.Before(mStart)}
		select {
		case jobs <- t:
		case <-ctx.Done():
			break pace
		}
		if t.measured {
			sent++
			lastSend = time.Now()
		}
	}
	close(jobs)
	wg.Wait()
	win.close(ph.onEnd)
	closeRaw(ws)
	st := merge(ws, mStart, dur, &errs)
	st.sent = sent
	st.achieved = float64(sent) / max(dur, lastSend.Sub(mStart)).Seconds()
	return st
}
