package taskstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/calclab/calclab/services/api"
)

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustCreate(t *testing.T, s *Store, tk api.Task) {
	t.Helper()
	if _, _, err := s.Create(context.Background(), tk, Request{Expression: tk.Expression}); err != nil {
		t.Fatalf("create %s: %v", tk.ID, err)
	}
}

func task(id, status string) api.Task {
	return api.Task{ID: id, Expression: "1+1", Status: status, CreatedAt: time.Now().UTC()}
}

func TestCreateIsIdempotent(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	if _, created, err := s.Create(context.Background(), task("a", api.StatusQueued), Request{Expression: "1+1"}); !created || err != nil {
		t.Fatalf("first Create did not create: %v", err)
	}
	got, created, err := s.Create(context.Background(), api.Task{ID: "a", Expression: "2+2", Status: api.StatusQueued}, Request{Expression: "2+2"})
	if created || err != nil || got.Expression != "1+1" {
		t.Fatalf("second Create with the same id: created=%v expr=%q; want the existing task back", created, got.Expression)
	}
}

func TestWaitWakesOnFinalStatus(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	mustCreate(t, s, task("a", api.StatusQueued))
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Update("a", func(t *api.Task) { t.Status = api.StatusAssigned })
		time.Sleep(20 * time.Millisecond)
		v := 2.0
		s.Update("a", func(t *api.Task) { t.Status, t.Result = api.StatusCompleted, &v })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := s.Wait(ctx, "a")
	if err != nil || got.Status != api.StatusCompleted || got.Result == nil || *got.Result != 2 {
		t.Fatalf("Wait returned %+v, %v; want the completed task", got, err)
	}
	if _, err := s.Wait(ctx, "missing"); err != ErrNotFound {
		t.Fatalf("Wait on an unknown id = %v, want ErrNotFound", err)
	}
}

func TestListPagesNewestFirstAndFilters(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	for i := range 25 {
		st := api.StatusCompleted
		if i%5 == 0 {
			st = api.StatusFailed
		}
		mustCreate(t, s, task(fmt.Sprintf("t%02d", i), st))
	}
	tests := []struct {
		name   string
		status string
		limit  int
		want   []string // ids of every page, concatenated
		total  int
	}{
		{"all in pages of 10", "", 10, nil, 25},
		{"failed only", api.StatusFailed, 2, []string{"t20", "t15", "t10", "t05", "t00"}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			cursor := ""
			pages := 0
			for {
				l, err := s.List(tc.status, tc.limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if l.Total != tc.total {
					t.Fatalf("total = %d, want %d", l.Total, tc.total)
				}
				for _, x := range l.Tasks {
					ids = append(ids, x.ID)
				}
				pages++
				if l.NextCursor == "" {
					break
				}
				cursor = l.NextCursor
			}
			if len(ids) != tc.total {
				t.Fatalf("paged through %d tasks in %d pages, want %d", len(ids), pages, tc.total)
			}
			if ids[0] != fmt.Sprintf("t%02d", 24) && tc.status == "" {
				t.Fatalf("first task %s, want newest t24", ids[0])
			}
			if tc.want != nil && fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Fatalf("ids %v, want %v", ids, tc.want)
			}
		})
	}
	if _, err := s.List("", 10, "bogus"); err == nil {
		t.Fatal("a bogus cursor was accepted")
	}
}

func TestTasksSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: time.Hour}) // only Close flushes
	v := 20.0
	mustCreate(t, s, task("done", api.StatusQueued))
	s.Update("done", func(t *api.Task) { t.Status, t.Result = api.StatusCompleted, &v })
	mustCreate(t, s, task("running", api.StatusAssigned))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	defer s.Close()
	got, ok := s.Get("done")
	if !ok || got.Status != api.StatusCompleted || *got.Result != 20 {
		t.Fatalf("after reopen: %+v %v; want the completed task with result 20", got, ok)
	}
	un := s.Unfinished()
	if len(un) != 1 || un[0].Task.ID != "running" || un[0].Request.Expression != "1+1" {
		t.Fatalf("unfinished after reopen = %+v, want [running]", un)
	}
	if c := s.Counts(); c[api.StatusCompleted] != 1 || c[api.StatusAssigned] != 1 {
		t.Fatalf("counts after reopen = %v", c)
	}
}

func TestGroupCommitWritesWithoutClose(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: 5 * time.Millisecond})
	mustCreate(t, s, task("a", api.StatusQueued))
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		s.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketTasks).Stats().KeyN
			return nil
		})
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("task not on disk 5s after creation: the group-commit writer is not flushing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
}

func TestRetentionDropsOldestFinished(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxTasks: 10})
	mustCreate(t, s, task("keep-running", api.StatusAssigned))
	for i := range 30 {
		mustCreate(t, s, task(fmt.Sprintf("t%02d", i), api.StatusCompleted))
	}
	if _, ok := s.Get("keep-running"); !ok {
		t.Fatal("retention dropped an unfinished task")
	}
	if _, ok := s.Get("t00"); ok {
		t.Fatal("oldest finished task was kept past MaxTasks")
	}
	if _, ok := s.Get("t29"); !ok {
		t.Fatal("newest task was dropped")
	}
	l, _ := s.List("", 1000, "")
	if l.Total > 10 || l.Total < 9 || len(l.Tasks) != l.Total {
		t.Fatalf("after retention: total %d, listed %d; want 9-10 (MaxTasks 10, a tenth freed at a time)", l.Total, len(l.Tasks))
	}
	for i := 1; i < len(l.Tasks); i++ {
		if l.Tasks[i].ID != "keep-running" && l.Tasks[i-1].ID != "keep-running" && l.Tasks[i].ID > l.Tasks[i-1].ID {
			t.Fatalf("listing not newest first after pruning: %s before %s", l.Tasks[i-1].ID, l.Tasks[i].ID)
		}
	}
	total := l.Total
	s.Close()
	s = open(t, dir, Options{MaxTasks: 10})
	defer s.Close()
	l, _ = s.List("", 1000, "")
	if l.Total != total {
		t.Fatalf("after reopen: %d tasks on disk, want %d (dropped ones must be deleted from disk)", l.Total, total)
	}
}

// TestPruningIsAmortised: a store at its limit must not rescan every task
// on every creation (that cost a busy master ~40% of its CPU).
func TestPruningIsAmortised(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxTasks: 20000, FlushEvery: time.Hour})
	defer s.Close()
	for i := range 20000 {
		mustCreate(t, s, task(fmt.Sprintf("a%06d", i), api.StatusCompleted))
	}
	for i := range 20000 {
		mustCreate(t, s, task(fmt.Sprintf("b%06d", i), api.StatusCompleted))
	}
	if l, _ := s.List("", 1, ""); l.Total > 20000 {
		t.Fatalf("%d tasks kept, limit 20000", l.Total)
	}
	// 20,000 creations past the limit: a scan of the whole store on each
	// would look at 4e8 entries; amortised pruning looks at each dropped
	// entry once.
	s.mu.Lock()
	scanned := s.scanned
	s.mu.Unlock()
	if scanned > 2*20000 {
		t.Fatalf("pruning looked at %d entries for 20000 creations", scanned)
	}
}

// setFault makes every write fail with the error fn returns (nil: succeed).
func setFault(s *Store, fn func() error) {
	s.mu.Lock()
	s.fault = fn
	s.mu.Unlock()
}

func onDisk(t *testing.T, s *Store, id string) (entry, bool) {
	t.Helper()
	var (
		e  entry
		ok bool
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketTasks).Get([]byte(id))
		if v == nil {
			return nil
		}
		ok = true
		return json.Unmarshal(v, &e)
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, ok
}

// TestDurableOnlyOnceOnDiskAndManyShareOneCommit: Durable returns only
// when the task's record is in the file, also when every write takes 300 ms
// (the review's slow disk), and tasks created in the same window are written
// by one commit, not one each.
func TestDurableOnlyOnceOnDiskAndManyShareOneCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		slow time.Duration
	}{{"fast disk", 0}, {"disk taking 300ms per write", 300 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, t.TempDir(), Options{FlushEvery: 50 * time.Millisecond})
			defer s.Close()
			var writes atomic.Int32
			setFault(s, func() error { writes.Add(1); time.Sleep(tc.slow); return nil })
			const n = 200
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("d%03d", i)
					if _, _, err := s.Create(context.Background(), task(id, api.StatusQueued), Request{Expression: "1+1"}); err != nil {
						errs <- err
						return
					}
					if err := s.Durable(context.Background(), id); err != nil {
						errs <- err
						return
					}
					if _, ok := onDisk(t, s, id); !ok {
						errs <- fmt.Errorf("Durable(%s) returned before the record was on disk", id)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if w := writes.Load(); w < 1 || w > n/10 {
				t.Fatalf("%d tasks created together took %d writes; want them to share commits (at most %d)", n, w, n/10)
			}
			t.Logf("%d tasks acknowledged durable by %d commits", n, writes.Load())
		})
	}
}

// TestFailedWriteIsRetriedNeverDropped: while writes fail the store says
// so, refuses new tasks and fails the acknowledgement of tasks in the
// failed commit; the queued changes are written once the disk works again.
func TestFailedWriteIsRetriedNeverDropped(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: 5 * time.Millisecond})
	mustCreate(t, s, task("before", api.StatusQueued))
	if err := s.Durable(context.Background(), "before"); err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	failing.Store(true)
	diskFull := errors.New("no space left on device (injected)")
	setFault(s, func() error {
		if failing.Load() {
			return diskFull
		}
		return nil
	})
	v := 7.0
	if _, err := s.Update("before", func(t *api.Task) { t.Status, t.Result = api.StatusCompleted, &v }); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, task("in-failed-commit", api.StatusQueued))
	err := s.Durable(context.Background(), "in-failed-commit")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Durable of a task whose write failed = %v, want ErrUnavailable", err)
	}
	if err := s.Err(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Err while writes fail = %v, want ErrUnavailable naming the disk error", err)
	}
	if _, _, err := s.Create(context.Background(), task("refused", api.StatusQueued), Request{Expression: "1+1"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create while writes fail = %v, want ErrUnavailable", err)
	}
	s.Abandon("in-failed-commit")
	time.Sleep(100 * time.Millisecond) // a few failed retries
	if s.WriteFailures() < 2 {
		t.Fatalf("%d failed writes counted; want the write retried", s.WriteFailures())
	}
	failing.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for s.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover after the disk came back: %v", s.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustCreate(t, s, task("after", api.StatusQueued))
	if err := s.Durable(context.Background(), "after"); err != nil {
		t.Fatalf("Durable after recovery: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	defer s.Close()
	if got, ok := s.Get("before"); !ok || got.Status != api.StatusCompleted || *got.Result != 7 {
		t.Fatalf("update made while writes failed: %+v %v; want it written after recovery", got, ok)
	}
	if _, ok := s.Get("in-failed-commit"); ok {
		t.Fatal("an abandoned (never acknowledged) task was kept")
	}
	if _, ok := s.Get("after"); !ok {
		t.Fatal("task created after recovery is missing")
	}
}

// TestCreateWaitsWhileWriterIsBehind: a write stuck on the disk makes new
// creations wait (backpressure) instead of piling up unwritten tasks.
func TestCreateWaitsWhileWriterIsBehind(t *testing.T) {
	s := open(t, t.TempDir(), Options{FlushEvery: 5 * time.Millisecond})
	defer s.Close()
	release := make(chan struct{})
	var once sync.Once
	setFault(s, func() error { <-release; return nil })
	defer once.Do(func() { close(release) })
	mustCreate(t, s, task("a", api.StatusQueued)) // its write blocks
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := s.Create(ctx, task("b", api.StatusQueued), Request{Expression: "1+1"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create while a write is stuck = %v, want it to wait until its context ends", err)
	}
	// Without a deadline of its own, the wait ends after MaxWait.
	s.opts.MaxWait = 80 * time.Millisecond
	start := time.Now()
	if _, _, err := s.Create(context.Background(), task("b", api.StatusQueued), Request{Expression: "1+1"}); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < s.opts.MaxWait {
		t.Fatalf("Create while a write is stuck, no deadline = %v after %s, want it to give up after MaxWait", err, time.Since(start))
	}
	s.opts.MaxWait = time.Minute
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Create(context.Background(), task("c", api.StatusQueued), Request{Expression: "1+1"})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Create returned (%v) while the write was still stuck", err)
	case <-time.After(50 * time.Millisecond):
	}
	setFault(s, nil)
	once.Do(func() { close(release) })
	if err := <-done; err != nil {
		t.Fatalf("Create after the write finished: %v", err)
	}
}

// TestUnfinishedTaskKeepsItsRequest: the original request (operation,
// hash key, request id) is stored with the task and comes back at start.
func TestUnfinishedTaskKeepsItsRequest(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	req := Request{Operation: &api.Operation{Operation: "addition", Operands: []float64{5, 3.25}}, HashKey: "user-7", RequestID: "req-1"}
	if _, _, err := s.Create(context.Background(), api.Task{ID: "op", Expression: "addition(5, 3.25)", Status: api.StatusAssigned}, req); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dir, Options{})
	defer s.Close()
	un := s.Unfinished()
	if len(un) != 1 {
		t.Fatalf("unfinished = %+v", un)
	}
	got := un[0].Request
	if got.HashKey != "user-7" || got.RequestID != "req-1" || got.Operation == nil || got.Operation.Operation != "addition" || fmt.Sprint(got.Operation.Operands) != "[5 3.25]" {
		t.Fatalf("stored request after reopen = %+v, want %+v", got, req)
	}
}

// TestRetentionBySize: big tasks are dropped by total size, not only by
// count.
func TestRetentionBySize(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxTasks: 100000, MaxBytes: 1 << 20})
	defer s.Close()
	big := strings.Repeat("1+", 2000) + "1" // ~4 KB, stored twice (display and request)
	for i := range 2000 {
		tk := api.Task{ID: fmt.Sprintf("b%04d", i), Expression: big, Status: api.StatusCompleted}
		if _, _, err := s.Create(context.Background(), tk, Request{Expression: big}); err != nil {
			t.Fatal(err)
		}
	}
	s.mu.Lock()
	bytes, n := s.bytes, len(s.tasks)
	s.mu.Unlock()
	if bytes > 1<<20 || n > 200 {
		t.Fatalf("store holds %d tasks, %d bytes; limit 1 MiB", n, bytes)
	}
	if _, ok := s.Get("b1999"); !ok {
		t.Fatal("newest task dropped")
	}
}

// TestRecordEncodingIsEncodingJSONs: the store writes a record with the
// same bytes json.Marshal gives, so records written before read back the
// same way.
func TestRecordEncodingIsEncodingJSONs(t *testing.T) {
	r := 42.5
	now := time.Date(2026, 12, 6, 16, 0, 0, 5, time.UTC)
	task := api.Task{ID: "t-1", Expression: "6 * 7", Status: api.StatusCompleted, Result: &r, Attempts: 1, CreatedAt: now, FinishedAt: &now, DurationMS: 0.25}
	for _, e := range []entry{
		{Seq: 1, Task: task},
		{Seq: 2, Task: task, Req: &Request{Expression: "6 * 7"}},
		{Seq: 3, Task: task, Req: &Request{Expression: "1 <& 2\n", HashKey: "user-42", RequestID: "rid"}},
		{Seq: 4, Task: task, Req: &Request{HashKey: "k"}},
		{Seq: 1 << 60, Task: task, Req: &Request{Operation: &api.Operation{Operation: "addition", Operands: []float64{1, 2.5}}, RequestID: "r"}},
	} {
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendEntry(nil, &e)
		if err != nil || string(got) != string(want) {
			t.Fatalf("got  %s (%v)\nwant %s", got, err, want)
		}
	}
}

// TestRemovedThenCreatedAgainIsStored: a commit removes before it puts, so
// an id abandoned and created again before the write is stored with its new
// task, and one only abandoned is gone after a reopen.
func TestRemovedThenCreatedAgainIsStored(t *testing.T) {
	for _, tc := range []struct {
		name       string
		onDisk     bool   // the first task was written before it was abandoned
		again      string // the expression of the second creation ("": none)
		wantStored string // after a reopen ("": no task)
	}{
		{name: "abandoned and created again in one window", again: "2+2", wantStored: "2+2"},
		{name: "on disk, abandoned and created again", onDisk: true, again: "3+3", wantStored: "3+3"},
		{name: "on disk, abandoned", onDisk: true},
		{name: "abandoned before its first write"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{FlushEvery: time.Hour})
			mustCreate(t, s, task("x", api.StatusQueued))
			if tc.onDisk {
				if err := s.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			s.Abandon("x")
			if tc.again != "" {
				tk := task("x", api.StatusQueued)
				tk.Expression = tc.again
				mustCreate(t, s, tk)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, dir, Options{})
			defer s.Close()
			got, ok := s.Get("x")
			switch {
			case tc.wantStored == "" && ok:
				t.Fatalf("abandoned task stored: %+v", got)
			case tc.wantStored != "" && (!ok || got.Expression != tc.wantStored):
				t.Fatalf("stored %+v (found %v), want expression %q", got, ok, tc.wantStored)
			}
			want := 0
			if tc.wantStored != "" {
				want = 1
			}
			if c := s.Counts(); c[api.StatusQueued] != want {
				t.Fatalf("counts after reopen %v, want %d queued", c, want)
			}
		})
	}
}

// TestWritesReusingTheirBuffersStoreEveryTaskAsItWas: each write reuses the
// buffers of the one before (Flush's scratch). Many writes, some called
// from several goroutines at once, of records from a few bytes to more than
// a buffer piece, must leave every task on disk exactly in its last state.
func TestWritesReusingTheirBuffersStoreEveryTaskAsItWas(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: time.Millisecond})
	const tasks = 3000
	expr := func(i int) string {
		switch i % 100 {
		case 0:
			return strings.Repeat("1+", maxRecord/2) + "1" // longer than maxRecord
		case 1:
			return strings.Repeat("2*", pieceSize/2) + "2" // longer than a piece
		default:
			return fmt.Sprintf("%d+%s", i, strings.Repeat("3", i%50))
		}
	}
	stop := make(chan struct{})
	var flushers sync.WaitGroup
	for range 3 {
		flushers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.Flush(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var makers sync.WaitGroup
	for w := range 4 {
		makers.Go(func() {
			for i := w; i < tasks; i += 4 {
				id := fmt.Sprintf("t%05d", i)
				tk := api.Task{ID: id, Expression: expr(i), Status: api.StatusQueued, CreatedAt: time.Now().UTC()}
				if _, _, err := s.Create(context.Background(), tk, Request{Expression: tk.Expression, RequestID: id}); err != nil {
					t.Error(err)
					return
				}
				v := float64(i)
				s.Update(id, func(t *api.Task) { t.Status, t.Slave = api.StatusAssigned, "slave-1" })
				if i%3 != 0 {
					s.Update(id, func(t *api.Task) { t.Status, t.Result = api.StatusCompleted, &v })
				}
			}
		})
	}
	makers.Wait()
	close(stop)
	flushers.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	defer s.Close()
	for i := range tasks {
		id := fmt.Sprintf("t%05d", i)
		got, ok := s.Get(id)
		want := api.StatusCompleted
		if i%3 == 0 {
			want = api.StatusAssigned
		}
		switch {
		case !ok:
			t.Fatalf("task %s missing after reopen", id)
		case got.Expression != expr(i) || got.Status != want || got.Slave != "slave-1":
			t.Fatalf("task %s after reopen: status %q slave %q expression of %d bytes; want %q, slave-1, %d bytes",
				id, got.Status, got.Slave, len(got.Expression), want, len(expr(i)))
		case want == api.StatusCompleted && (got.Result == nil || *got.Result != float64(i)):
			t.Fatalf("task %s after reopen: result %v, want %d", id, got.Result, i)
		}
	}
	if un := s.Unfinished(); len(un) != tasks/3 {
		t.Fatalf("%d unfinished tasks after reopen, want %d", len(un), tasks/3)
	}
}
