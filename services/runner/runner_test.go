package runner

// These tests run the runner on a real task store (a bbolt file in a temp
// dir) and a real dispatch.Pool, with the slaves replaced by fakeSlaves,
// which answer from a script instead of over HTTP: no sockets. The real
// slaves over loopback are covered by services/master and tests/integration.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/taskstore"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeSlaves answers Compute from fn and records every call.
type fakeSlaves struct {
	fn    func(tg dispatch.Target, req api.ComputeRequest) (api.ComputeResponse, error)
	batch func(tg dispatch.Target, req api.ComputeBatchRequest) (api.ComputeBatchResponse, error)
	mu    sync.Mutex
	calls []api.ComputeRequest
	reqID []string
}

func (f *fakeSlaves) Compute(_ context.Context, tg dispatch.Target, req api.ComputeRequest, reqID string) (api.ComputeResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, req)
	f.reqID = append(f.reqID, reqID)
	f.mu.Unlock()
	return f.fn(tg, req)
}

func (f *fakeSlaves) ComputeBatch(_ context.Context, tg dispatch.Target, req api.ComputeBatchRequest, _ string) (api.ComputeBatchResponse, error) {
	if f.batch == nil {
		return api.ComputeBatchResponse{}, errors.New("no batch script")
	}
	return f.batch(tg, req)
}

// keyRecorder is a Dispatcher that records the key of every job.
type keyRecorder struct {
	*dispatch.Pool
	mu   sync.Mutex
	keys map[string]bool
}

func (k *keyRecorder) Do(ctx context.Context, key string, fn dispatch.Attempt) (dispatch.Target, int, error) {
	k.mu.Lock()
	k.keys[key] = true
	k.mu.Unlock()
	return k.Pool.Do(ctx, key, fn)
}

func newPool(t *testing.T, slaves ...string) *keyRecorder {
	t.Helper()
	pol, _ := balancer.New("consistent-hash")
	p := dispatch.NewPool(dispatch.Config{Policy: pol, Logger: quiet})
	for _, id := range slaves {
		p.Register("http://"+id+".invalid", id, 4, "")
	}
	return &keyRecorder{Pool: p, keys: map[string]bool{}}
}

func openStore(t *testing.T, dir string) *taskstore.Store {
	t.Helper()
	s, err := taskstore.Open(dir, taskstore.Options{FlushEvery: 5 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type finishedLog struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *finishedLog) add(_ context.Context, t api.Task) {
	f.mu.Lock()
	f.n[t.ID]++
	f.mu.Unlock()
}

func newRunner(t *testing.T, store Store, pool Dispatcher, slaves Slaves, deadline time.Duration) (*Runner, *finishedLog) {
	t.Helper()
	fin := &finishedLog{n: map[string]int{}}
	r := New(Config{Deadline: deadline, Logger: quiet, Finished: fin.add}, store, pool, slaves)
	r.Start()
	t.Cleanup(r.Stop)
	return r, fin
}

func wait(t *testing.T, s *taskstore.Store, id string) api.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := s.Wait(ctx, id)
	if err != nil || !got.Done() {
		t.Fatalf("task %s not final: %+v %v", id, got, err)
	}
	return got
}

func ptr(v float64) *float64 { return &v }

// TestFinalStatusRecordedOnceWithTypedReasonFakeSlaves: each way a task can
// end gives its status and reason, recorded exactly once.
func TestFinalStatusRecordedOnceWithTypedReasonFakeSlaves(t *testing.T) {
	tests := []struct {
		name     string
		fn       func(tg dispatch.Target, req api.ComputeRequest) (api.ComputeResponse, error)
		status   string
		reason   string
		attempts int // minimum
	}{
		{"completed", func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
			return api.ComputeResponse{Result: ptr(4)}, nil
		}, api.StatusCompleted, "", 1},
		{"evaluation error is final, not retried", func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
			return api.ComputeResponse{Error: "division by zero"}, nil
		}, api.StatusFailed, api.ReasonEvaluation, 1},
		{"a failing slave is left for another one", func(tg dispatch.Target, _ api.ComputeRequest) (api.ComputeResponse, error) {
			if tg.ID == "s1" {
				return api.ComputeResponse{}, errors.New("connection refused")
			}
			return api.ComputeResponse{Result: ptr(4)}, nil
		}, api.StatusCompleted, "", 1},
		// With one slave, a retry can only go back to it: that does not
		// use up a try (dispatch waits for another slave instead), so the
		// task keeps trying within its deadline.
		{"an empty answer is the slave's fault, retried (on the only slave until the deadline)", func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
			time.Sleep(10 * time.Millisecond)
			return api.ComputeResponse{}, nil
		}, api.StatusFailed, api.ReasonDeadline, 3},
		{"a slave that never answers is retried until the deadline", func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
			time.Sleep(time.Second)
			return api.ComputeResponse{}, errors.New("no answer")
		}, api.StatusFailed, api.ReasonDeadline, 1},
		{"a job fault other than evaluation is unavailable", func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
			return api.ComputeResponse{}, dispatch.Permanent(errors.New("slave refused the task"))
		}, api.StatusFailed, api.ReasonUnavailable, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := openStore(t, t.TempDir())
			defer store.Close()
			r, fin := newRunner(t, store, newPool(t, "s1", "s2"), &fakeSlaves{fn: tc.fn}, 300*time.Millisecond)
			if _, created, err := r.Submit(context.Background(), Submission{ID: "t", Display: "2+2", Request: taskstore.Request{Expression: "2+2"}}); err != nil || !created {
				t.Fatalf("submit: created=%v %v", created, err)
			}
			got := wait(t, store, "t")
			if got.Status != tc.status || got.Reason != tc.reason || got.Attempts < tc.attempts {
				t.Fatalf("task %+v; want status %s reason %q, >= %d attempts", got, tc.status, tc.reason, tc.attempts)
			}
			if tc.reason == api.ReasonEvaluation && got.Attempts != 1 {
				t.Fatalf("evaluation error tried %d times, want 1", got.Attempts)
			}
			time.Sleep(20 * time.Millisecond)
			fin.mu.Lock()
			n := fin.n["t"]
			fin.mu.Unlock()
			if n != 1 {
				t.Fatalf("final status recorded %d times, want once", n)
			}
		})
	}
}

// TestUnfinishedTaskRunsAgainAsSubmittedWithHashKeyFakeSlaves: a task left
// unfinished by a previous master runs again from its stored request: the
// same operation and operands, the same hash key, the same request id.
func TestUnfinishedTaskRunsAgainAsSubmittedWithHashKeyFakeSlaves(t *testing.T) {
	dir := t.TempDir()
	store := openStore(t, dir)
	op := &api.Operation{Operation: "addition", Operands: []float64{0.1, 0.2, 1e300}}
	req := taskstore.Request{Operation: op, HashKey: "customer-42", RequestID: "req-abc"}
	if _, _, err := store.Create(context.Background(), api.Task{ID: "left", Expression: "addition(0.1, 0.2, 1e+300)", Status: api.StatusAssigned, CreatedAt: time.Now()}, req); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Create(context.Background(), api.Task{ID: "legacy", Expression: "1+1", Status: api.StatusQueued, CreatedAt: time.Now()}, taskstore.Request{}); err != nil {
		t.Fatal(err)
	}
	store.Close() // as a crash after the commit would leave it

	store = openStore(t, dir)
	defer store.Close()
	slaves := &fakeSlaves{fn: func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
		return api.ComputeResponse{Result: ptr(1e300)}, nil
	}}
	pool := newPool(t, "s1", "s2", "s3")
	newRunner(t, store, pool, slaves, 5*time.Second)
	got := wait(t, store, "left")
	if got.Status != api.StatusCompleted {
		t.Fatalf("resumed task %+v, want completed", got)
	}
	slaves.mu.Lock()
	calls, ids := slaves.calls, slaves.reqID
	slaves.mu.Unlock()
	if len(calls) != 1 || calls[0].Operation == nil || calls[0].Operation.Operation != "addition" ||
		fmt.Sprint(calls[0].Operation.Operands) != fmt.Sprint(op.Operands) || calls[0].ID != "left" {
		t.Fatalf("slave got %+v, want the stored operation %+v", calls, op)
	}
	if ids[0] != "req-abc" {
		t.Fatalf("request id sent %q, want the stored req-abc", ids[0])
	}
	pool.mu.Lock()
	keyed := pool.keys["customer-42"]
	pool.mu.Unlock()
	if !keyed {
		t.Fatalf("dispatched with keys %v, want the stored hash key customer-42", pool.keys)
	}
	legacy := wait(t, store, "legacy")
	if legacy.Status != api.StatusFailed || legacy.Reason != api.ReasonInvalid {
		t.Fatalf("task stored without its request: %+v, want failed with reason invalid", legacy)
	}
}

// failingStore is a real store whose commits fail as a full disk would.
type failingStore struct {
	*taskstore.Store
	failing atomic.Bool
}

var errDisk = fmt.Errorf("%w: write tasks.db: no space left on device", taskstore.ErrUnavailable)

func (f *failingStore) Durable(ctx context.Context, id string) error {
	if f.failing.Load() {
		return errDisk
	}
	return f.Store.Durable(ctx, id)
}

func (f *failingStore) Err() error {
	if f.failing.Load() {
		return errDisk
	}
	return nil
}

// TestNotAcknowledgedWhenCommitFailsFakeSlaves: a task whose commit failed
// is not acknowledged and is forgotten; while the store cannot write, new
// tasks are refused before they are stored.
func TestNotAcknowledgedWhenCommitFailsFakeSlaves(t *testing.T) {
	store := &failingStore{Store: openStore(t, t.TempDir())}
	defer store.Close()
	slow := make(chan struct{})
	slaves := &fakeSlaves{fn: func(dispatch.Target, api.ComputeRequest) (api.ComputeResponse, error) {
		<-slow
		return api.ComputeResponse{Result: ptr(1)}, nil
	}}
	r, fin := newRunner(t, store, newPool(t, "s1"), slaves, 5*time.Second)
	if _, _, err := r.Submit(context.Background(), Submission{ID: "a", Display: "1", Request: taskstore.Request{Expression: "1"}}); err != nil {
		t.Fatal(err)
	}
	store.failing.Store(true)
	if err := r.Acknowledge(context.Background(), "a"); !errors.Is(err, taskstore.ErrUnavailable) {
		t.Fatalf("Acknowledge while the commit fails = %v, want ErrUnavailable", err)
	}
	if _, ok := store.Get("a"); ok {
		t.Fatal("a task that was never acknowledged is still stored")
	}
	if _, _, err := r.Submit(context.Background(), Submission{ID: "b", Display: "1", Request: taskstore.Request{Expression: "1"}}); !errors.Is(err, taskstore.ErrUnavailable) {
		t.Fatalf("Submit while the store cannot write = %v, want ErrUnavailable", err)
	}
	if _, ok := store.Get("b"); ok {
		t.Fatal("a refused task was stored")
	}
	close(slow)
	time.Sleep(50 * time.Millisecond)
	fin.mu.Lock()
	defer fin.mu.Unlock()
	if fin.n["a"] != 0 {
		t.Fatal("an abandoned task was recorded as finished")
	}
}

// TestGroupedTasksRecordedOnceFakeSlaves: tasks that wait are sent in
// groups (one slave answers every batch malformed, and is soon ejected);
// each task completes with its own result and is recorded once.
func TestGroupedTasksRecordedOnceFakeSlaves(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	pol, _ := balancer.New("round-robin")
	pool := dispatch.NewPool(dispatch.Config{Policy: pol, Logger: quiet})
	pool.Register("http://bad.invalid", "bad", 1, "")
	pool.Register("http://good.invalid", "good", 1, "")
	var groups, malformed atomic.Int32
	slaves := &fakeSlaves{
		fn: func(_ dispatch.Target, req api.ComputeRequest) (api.ComputeResponse, error) {
			time.Sleep(20 * time.Millisecond) // keep the slaves busy so tasks wait and group
			var v float64
			fmt.Sscanf(req.Expression, "%g", &v)
			return api.ComputeResponse{Result: ptr(v)}, nil
		},
		batch: func(tg dispatch.Target, req api.ComputeBatchRequest) (api.ComputeBatchResponse, error) {
			items := make([]api.BatchItem, len(req.Expressions))
			if tg.ID == "bad" {
				malformed.Add(1)
				return api.ComputeBatchResponse{Results: items}, nil // 200 with empty items
			}
			groups.Add(1)
			for i, e := range req.Expressions {
				var v float64
				fmt.Sscanf(e, "%g", &v)
				items[i].Result = ptr(v)
			}
			return api.ComputeBatchResponse{Results: items}, nil
		},
	}
	fin := &finishedLog{n: map[string]int{}}
	r := New(Config{Deadline: 10 * time.Second, Logger: quiet, Finished: fin.add, Group: true}, store, pool, slaves)
	r.Start()
	defer r.Stop()
	const n = 60
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := fmt.Sprint(i)
			if _, _, err := r.Submit(context.Background(), Submission{ID: "g" + e, Display: e, Request: taskstore.Request{Expression: e}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for i := range n {
		got := wait(t, store, fmt.Sprint("g", i))
		if got.Status != api.StatusCompleted || *got.Result != float64(i) {
			t.Fatalf("task g%d: %+v, want completed with %d", i, got, i)
		}
	}
	fin.mu.Lock()
	defer fin.mu.Unlock()
	for id, k := range fin.n {
		if k != 1 {
			t.Fatalf("task %s recorded %d times", id, k)
		}
	}
	if groups.Load() == 0 {
		t.Fatal("no task was grouped: the test did not exercise grouping")
	}
	t.Logf("%d groups answered by the good slave, %d malformed answers retried elsewhere", groups.Load(), malformed.Load())
}

// TestMalformedBatchAnswerIsSlaveFaultRunsElsewhereFakeSlaves: a batch
// answer that is not well formed (200 with items holding neither a result
// nor an error) is the slave's fault: the group runs on another slave.
func TestMalformedBatchAnswerIsSlaveFaultRunsElsewhereFakeSlaves(t *testing.T) {
	store := openStore(t, t.TempDir())
	defer store.Close()
	pol, _ := balancer.New("round-robin")
	pool := dispatch.NewPool(dispatch.Config{Policy: pol, Logger: quiet})
	pool.Register("http://bad.invalid", "bad", 1, "")
	pool.Register("http://good.invalid", "good", 1, "")
	var malformed atomic.Int32
	slaves := &fakeSlaves{batch: func(tg dispatch.Target, req api.ComputeBatchRequest) (api.ComputeBatchResponse, error) {
		items := make([]api.BatchItem, len(req.Expressions))
		if tg.ID == "bad" {
			malformed.Add(1)
			return api.ComputeBatchResponse{Results: items}, nil
		}
		for i := range items {
			items[i].Result = ptr(7)
		}
		return api.ComputeBatchResponse{Results: items}, nil
	}}
	r := New(Config{Deadline: 5 * time.Second, Logger: quiet, Group: true}, store, pool, slaves)
	r.Start()
	defer r.Stop()
	// Two groups in a row under round-robin: one of them goes to the bad
	// slave first.
	for i := range 2 {
		o := r.group.submit(&pending{id: fmt.Sprint("m", i), expr: "7", deadline: time.Now().Add(5 * time.Second)})
		if o.err != nil || o.result != 7 || o.slave != "good" {
			t.Fatalf("group %d: %+v; want 7 from the good slave", i, o)
		}
	}
	if malformed.Load() == 0 {
		t.Fatal("neither group reached the bad slave: the retry after a malformed answer was not exercised")
	}
}
