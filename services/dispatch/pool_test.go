package dispatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
)

func quietPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if cfg.Policy == nil {
		cfg.Policy = balancer.RoundRobin()
	}
	return NewPool(cfg)
}

func TestRegisterIsIdempotentByURL(t *testing.T) {
	p := quietPool(t, Config{})
	id1, new1 := p.Register("http://127.0.0.1:1", "", 2, "v")
	id2, new2 := p.Register("http://127.0.0.1:1", "", 4, "v")
	if !new1 || new2 || id1 != id2 {
		t.Fatalf("second registration of the same URL: ids %s/%s new %v/%v; want same id, not new", id1, id2, new1, new2)
	}
	if got := p.List()[0].Capacity; got != 4 {
		t.Fatalf("capacity after re-registration = %d, want 4", got)
	}
	id3, _ := p.Register("http://127.0.0.1:2", "slave-b", 1, "v")
	if id3 != "slave-b" {
		t.Fatalf("requested id not kept: %s", id3)
	}
	if len(p.List()) != 2 {
		t.Fatalf("want 2 slaves, got %d", len(p.List()))
	}
}

func TestDoRespectsCapacityAndQueuesFIFO(t *testing.T) {
	p := quietPool(t, Config{})
	p.Register("http://127.0.0.1:1", "a", 1, "")
	release := make(chan struct{})
	started := make(chan int, 10)
	var running, peak atomic.Int32
	var order []int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := p.Do(context.Background(), "", func(ctx context.Context, tg Target, try int) error {
				n := running.Add(1)
				for {
					old := peak.Load()
					if n <= old || peak.CompareAndSwap(old, n) {
						break
					}
				}
				started <- i
				mu.Lock()
				order = append(order, i)
				mu.Unlock()
				<-release
				running.Add(-1)
				return nil
			})
			if err != nil {
				t.Errorf("job %d: %v", i, err)
			}
		}()
		// Make the arrival order deterministic.
		if i == 0 {
			<-started
		} else {
			waitFor(t, func() bool { return p.QueueDepth() == i })
		}
	}
	if d := p.QueueDepth(); d != 4 {
		t.Fatalf("queue depth = %d, want 4 jobs waiting for the one slot", d)
	}
	close(release)
	wg.Wait()
	if peak.Load() != 1 {
		t.Fatalf("capacity 1 but %d jobs ran at once", peak.Load())
	}
	for k, v := range order {
		if k != v {
			t.Fatalf("queued jobs ran in order %v, want FIFO 0..4", order)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestDoRetriesOnAnotherSlave(t *testing.T) {
	p := quietPool(t, Config{FailThreshold: 2})
	p.Register("http://127.0.0.1:1", "dead", 4, "")
	p.Register("http://127.0.0.1:2", "live", 4, "")
	for i := range 20 {
		var tried []string
		tg, tries, err := p.Do(context.Background(), "", func(ctx context.Context, tg Target, try int) error {
			tried = append(tried, tg.ID)
			if tg.ID == "dead" {
				return errors.New("connection refused")
			}
			return nil
		})
		if err != nil || tg.ID != "live" {
			t.Fatalf("job %d: ended on %q with %v, want success on live", i, tg.ID, err)
		}
		if tries > 2 {
			t.Fatalf("job %d took %d tries (%v): a failed slave must not be retried while another is free", i, tries, tried)
		}
	}
	var dead api.SlaveInfo
	for _, s := range p.List() {
		if s.ID == "dead" {
			dead = s
		}
	}
	if dead.Status != api.SlaveDown {
		t.Fatalf("slave failing every job has status %q, want down (ejected)", dead.Status)
	}
}

func TestPermanentErrorIsNotRetried(t *testing.T) {
	p := quietPool(t, Config{})
	p.Register("http://127.0.0.1:1", "a", 4, "")
	p.Register("http://127.0.0.1:2", "b", 4, "")
	calls := 0
	_, tries, err := p.Do(context.Background(), "", func(context.Context, Target, int) error {
		calls++
		return Permanent(errors.New("division by zero"))
	})
	if !IsPermanent(err) || calls != 1 || tries != 1 {
		t.Fatalf("permanent error: calls=%d tries=%d err=%v; want one call and the error back", calls, tries, err)
	}
	for _, s := range p.List() {
		if s.Failures != 0 || s.Status == api.SlaveDown {
			t.Fatalf("an evaluation error counted against slave %s: %+v", s.ID, s)
		}
	}
}

func TestDeadlineWhileQueued(t *testing.T) {
	p := quietPool(t, Config{})
	p.Register("http://127.0.0.1:1", "a", 1, "")
	hold := make(chan struct{})
	go p.Do(context.Background(), "", func(context.Context, Target, int) error { <-hold; return nil })
	waitFor(t, func() bool { return p.List()[0].InFlight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ran := false
	_, _, err := p.Do(ctx, "", func(context.Context, Target, int) error { ran = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Fatalf("queued job past its deadline: err=%v ran=%v; want DeadlineExceeded, not run", err, ran)
	}
	if d := p.QueueDepth(); d != 0 {
		t.Fatalf("expired job still queued: depth %d", d)
	}
	close(hold)
	// The slot must come back: a new job runs.
	waitFor(t, func() bool { return p.List()[0].InFlight == 0 })
	if _, _, err := p.Do(context.Background(), "", func(context.Context, Target, int) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestQueuedJobWaitsForFirstSlave(t *testing.T) {
	p := quietPool(t, Config{})
	if err := p.Admit(); !errors.Is(err, ErrNoSlaves) {
		t.Fatalf("Admit with no slaves = %v, want ErrNoSlaves", err)
	}
	done := make(chan string, 1)
	go func() {
		tg, _, err := p.Do(context.Background(), "", func(context.Context, Target, int) error { return nil })
		if err != nil {
			done <- err.Error()
			return
		}
		done <- tg.ID
	}()
	waitFor(t, func() bool { return p.QueueDepth() == 1 })
	p.Register("http://127.0.0.1:9", "late", 1, "")
	select {
	case id := <-done:
		if id != "late" {
			t.Fatalf("queued job ended with %q, want it run on the slave that registered", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("queued job did not run after a slave registered")
	}
}

func TestAdmitQueueFull(t *testing.T) {
	p := quietPool(t, Config{MaxQueue: 2})
	p.Register("http://127.0.0.1:1", "a", 1, "")
	hold := make(chan struct{})
	defer close(hold)
	for range 3 {
		go p.Do(context.Background(), "", func(context.Context, Target, int) error { <-hold; return nil })
	}
	waitFor(t, func() bool { return p.QueueDepth() == 2 })
	if err := p.Admit(); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Admit with a full queue = %v, want ErrQueueFull", err)
	}
}

func TestEjectAndReadmitWithBackoff(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	p := quietPool(t, Config{FailThreshold: 3, EjectBase: time.Second, EjectMax: 8 * time.Second, Now: clock})
	p.Register("http://127.0.0.1:1", "a", 1, "")
	status := func() string { return p.List()[0].Status }
	for range 2 {
		p.CheckResult("a", errCheck, api.Health{})
	}
	if status() == api.SlaveDown {
		t.Fatal("ejected before reaching the failure threshold")
	}
	p.CheckResult("a", errCheck, api.Health{})
	if status() != api.SlaveDown {
		t.Fatalf("status %q after 3 failures, want down", status())
	}
	if err := p.Admit(); !errors.Is(err, ErrNoSlaves) {
		t.Fatalf("Admit with the only slave down = %v, want ErrNoSlaves", err)
	}
	p.CheckResult("a", nil, api.Health{Status: "ok"})
	if status() != api.SlaveDown {
		t.Fatal("re-admitted before its backoff elapsed")
	}
	advance(1100 * time.Millisecond)
	p.CheckResult("a", nil, api.Health{Status: "ok"})
	if status() == api.SlaveDown {
		t.Fatal("not re-admitted after its backoff")
	}
	// A second ejection doubles the backoff.
	for range 3 {
		p.CheckResult("a", errCheck, api.Health{})
	}
	advance(1100 * time.Millisecond)
	p.CheckResult("a", nil, api.Health{Status: "ok"})
	if status() != api.SlaveDown {
		t.Fatal("second ejection did not back off longer than the first")
	}
	advance(time.Second)
	p.CheckResult("a", nil, api.Health{Status: "ok"})
	if status() == api.SlaveDown {
		t.Fatal("not re-admitted after the doubled backoff")
	}
}

func TestDrainRemovesAfterInFlight(t *testing.T) {
	p := quietPool(t, Config{})
	p.Register("http://127.0.0.1:1", "a", 2, "")
	p.Register("http://127.0.0.1:2", "b", 2, "")
	hold := make(chan struct{})
	got := make(chan string, 1)
	go p.Do(context.Background(), "", func(_ context.Context, tg Target, _ int) error { got <- tg.ID; <-hold; return nil })
	busy := <-got
	known, removed := p.Drain(busy)
	if !known || removed {
		t.Fatalf("Drain of a busy slave: known=%v removed=%v, want known and not yet removed", known, removed)
	}
	for range 10 {
		tg, _, err := p.Do(context.Background(), "", func(context.Context, Target, int) error { return nil })
		if err != nil || tg.ID == busy {
			t.Fatalf("draining slave %s got new work (ran on %s, err %v)", busy, tg.ID, err)
		}
	}
	close(hold)
	waitFor(t, func() bool { return len(p.List()) == 1 })
	if r := p.Heartbeat(busy, api.Heartbeat{}); r != HeartbeatRemoved {
		t.Fatalf("heartbeat of a drained slave = %v, want HeartbeatRemoved", r)
	}
	if r := p.Heartbeat("never-seen", api.Heartbeat{}); r != HeartbeatUnknown {
		t.Fatalf("heartbeat of an unknown slave = %v, want HeartbeatUnknown", r)
	}
}

// TestConcurrentJobsRunOnce hammers the pool with failing and succeeding
// slaves and checks that every job finishes exactly once with success.
func TestConcurrentJobsRunOnce(t *testing.T) {
	p := quietPool(t, Config{FailThreshold: 1000})
	p.Register("http://127.0.0.1:1", "flaky", 3, "")
	p.Register("http://127.0.0.1:2", "good", 3, "")
	var successes sync.Map
	var wg sync.WaitGroup
	var flakyCalls atomic.Int64
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := p.Do(context.Background(), fmt.Sprint(i), func(ctx context.Context, tg Target, try int) error {
				if tg.ID == "flaky" && flakyCalls.Add(1)%2 == 0 {
					return errors.New("reset by peer")
				}
				if _, dup := successes.LoadOrStore(i, tg.ID); dup {
					t.Errorf("job %d succeeded twice", i)
				}
				return nil
			})
			if err != nil {
				t.Errorf("job %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	n := 0
	successes.Range(func(any, any) bool { n++; return true })
	if n != 300 {
		t.Fatalf("%d of 300 jobs succeeded", n)
	}
	for _, s := range p.List() {
		if s.InFlight != 0 {
			t.Fatalf("slot leak: slave %s has %d in flight after all jobs", s.ID, s.InFlight)
		}
	}
}

func TestRefreshKeepsWhatItDoesNotRestate(t *testing.T) {
	p := quietPool(t, Config{})
	p.Register("http://127.0.0.1:1", "a", 8, "1.2.3")
	p.Register("http://127.0.0.1:1", "", 0, "")
	s := p.List()[0]
	if s.Capacity != 8 || s.Version != "1.2.3" {
		t.Fatalf("refresh without capacity/version wiped them: %+v", s)
	}
}

var errCheck = errors.New("check failed")

// recEvents records a pool's events.
type recEvents struct {
	mu     sync.Mutex
	events []string
}

func (r *recEvents) add(s string) { r.mu.Lock(); r.events = append(r.events, s); r.mu.Unlock() }
func (r *recEvents) Failed(slave, source string, err error) {
	r.add(fmt.Sprintf("failed %s %s: %v", slave, source, err))
}
func (r *recEvents) Ejected(slave, source string) { r.add("ejected " + slave + " " + source) }
func (r *recEvents) Retried(c Class)              { r.add("retried " + c.String()) }
func (r *recEvents) Removed(slave string)         { r.add("removed " + slave) }
func (r *recEvents) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

// TestLastFailureIsShownAndWarnedOnce: a failed health check or job is
// kept as the slave's last failure (reason and time) in List, after it
// recovers too; the change from healthy to failing is logged at warn once
// (failures in a row after it at debug), and the events are told.
func TestLastFailureIsShownAndWarnedOnce(t *testing.T) {
	now := time.Unix(1000, 0).UTC()
	var logs testcluster.LockedBuffer
	ev := &recEvents{}
	p := NewPool(Config{
		FailThreshold: 3, Policy: balancer.RoundRobin(), Now: func() time.Time { return now }, Events: ev,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	p.Register("http://127.0.0.1:1", "a", 1, "")
	if s := p.List()[0]; s.LastFailure != "" || s.LastFailureAt != nil {
		t.Fatalf("a new slave has a last failure: %+v", s)
	}
	warnings := func() int { return strings.Count(logs.String(), `level=WARN msg="slave failing"`) }
	unhealthy := errors.New(`slave reports status "healthy"`)
	p.CheckResult("a", unhealthy, api.Health{})
	s := p.List()[0]
	if s.LastFailure != `health check: slave reports status "healthy"` || s.LastFailureAt == nil || !s.LastFailureAt.Equal(now) || s.Failures != 1 {
		t.Fatalf("after a failed check: %+v", s)
	}
	if warnings() != 1 || !strings.Contains(logs.String(), `reason="health check: slave reports status \"healthy\""`) {
		t.Fatalf("the change to failing is not one warning with its reason:\n%s", logs.String())
	}
	now = now.Add(time.Second)
	p.CheckResult("a", errors.New("timeout"), api.Health{})
	if warnings() != 1 {
		t.Fatalf("a second failure in a row warned again:\n%s", logs.String())
	}
	if s := p.List()[0]; s.LastFailure != "health check: timeout" || !s.LastFailureAt.Equal(now) {
		t.Fatalf("the last failure is not the latest: %+v", s)
	}
	now = now.Add(time.Second)
	p.CheckResult("a", nil, api.Health{Status: "ok"})
	if s := p.List()[0]; s.Failures != 0 || s.LastFailure != "health check: timeout" || s.LastFailureAt == nil {
		t.Fatalf("a passing check lost the last failure: %+v", s)
	}
	// Failing again after recovering is a new change: warned.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, _, err := p.Run(ctx, Job{}, func(context.Context, Target, int) error {
		return errors.New("connection refused")
	})
	if err == nil {
		t.Fatal("a failing job succeeded")
	}
	if s := p.List()[0]; s.LastFailure != "job: connection refused" || !s.LastFailureAt.Equal(now) {
		t.Fatalf("after a failed job: %+v", s)
	}
	if warnings() != 2 {
		t.Fatalf("failing again after recovering: %d warnings, want 2:\n%s", warnings(), logs.String())
	}
	want := []string{
		`failed a check: slave reports status "healthy"`,
		"failed a check: timeout",
		"failed a job: connection refused",
		"retried task",
	}
	got := ev.list()
	if len(got) < len(want) {
		t.Fatalf("events %q, want them to start with %q", got, want)
	}
	for i, w := range want {
		if got[i] != w {
			t.Fatalf("events %q, want them to start with %q", got, want)
		}
	}
}
