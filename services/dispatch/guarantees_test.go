package dispatch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
)

func slaveInfo(t *testing.T, p *Pool, id string) api.SlaveInfo {
	t.Helper()
	s, ok := p.Get(id)
	if !ok {
		t.Fatalf("slave %s not registered", id)
	}
	return s
}

// TestSlaveFailingTasksIsEjectedWhateverItsHealthChecksSay: passive outlier
// detection; a passing /health between failed jobs does not reset them, and
// an ejected slave is not re-admitted by a passing check before its backoff.
func TestSlaveFailingTasksIsEjectedWhateverItsHealthChecksSay(t *testing.T) {
	now := time.Unix(1000, 0)
	p := quietPool(t, Config{FailThreshold: 3, MaxTries: 1, EjectBase: time.Second, Now: func() time.Time { return now }})
	p.Register("http://127.0.0.1:1", "bad", 4, "")
	for i := range 3 {
		_, _, err := p.Do(context.Background(), "", func(context.Context, Target, int) error { return errors.New("500 on tasks") })
		if err == nil {
			t.Fatal("failing job succeeded")
		}
		if i < 2 {
			p.CheckResult("bad", nil, api.Health{Status: "ok"})
		}
	}
	if st := slaveInfo(t, p, "bad").Status; st != api.SlaveDown {
		t.Fatalf("slave failing 3 tasks in a row with passing health checks between is %q, want down", st)
	}
	p.CheckResult("bad", nil, api.Health{Status: "ok"})
	if st := slaveInfo(t, p, "bad").Status; st != api.SlaveDown {
		t.Fatalf("a passing health check re-admitted an ejected slave before its backoff: %q", st)
	}
	now = now.Add(1100 * time.Millisecond)
	p.CheckResult("bad", nil, api.Health{Status: "ok"})
	if st := slaveInfo(t, p, "bad").Status; st == api.SlaveDown {
		t.Fatal("not re-admitted after its backoff and a passing check")
	}
}

// TestSlowJobDoesNotEjectHealthySlaves: a job that times out (a suspect
// failure) on two slaves is the job's fault: it stops there (bounded) and
// counts against neither slave, however often it is submitted.
func TestSlowJobDoesNotEjectHealthySlaves(t *testing.T) {
	p := quietPool(t, Config{FailThreshold: 2})
	p.Register("http://127.0.0.1:1", "a", 4, "")
	p.Register("http://127.0.0.1:2", "b", 4, "")
	for range 5 {
		tries := 0
		_, n, err := p.Run(context.Background(), Job{Class: ClassTile}, func(context.Context, Target, int) error {
			tries++
			return Suspect(errors.New("tile exceeded its timeout"))
		})
		if !errors.Is(err, ErrJobFault) || !IsPermanent(err) || tries != 2 || n != 2 {
			t.Fatalf("slow job: %d tries, err %v; want 2 tries and a permanent ErrJobFault", tries, err)
		}
	}
	for _, s := range p.List() {
		if s.Status == api.SlaveDown || s.Failures != 0 {
			t.Fatalf("a slow job counted against healthy slave %+v", s)
		}
	}
}

// TestSuspectFailureCountsOnceTheJobSucceedsElsewhere: a slave that hangs
// on tasks (timeouts) while another answers them is ejected.
func TestSuspectFailureCountsOnceTheJobSucceedsElsewhere(t *testing.T) {
	p := quietPool(t, Config{FailThreshold: 2})
	p.Register("http://127.0.0.1:1", "hang", 4, "")
	p.Register("http://127.0.0.1:2", "ok", 4, "")
	for range 4 {
		tg, _, err := p.Do(context.Background(), "", func(_ context.Context, tg Target, _ int) error {
			if tg.ID == "hang" {
				return Suspect(errors.New("no answer within 5s"))
			}
			return nil
		})
		if err != nil || tg.ID != "ok" {
			t.Fatalf("job ended on %s with %v", tg.ID, err)
		}
	}
	if st := slaveInfo(t, p, "hang").Status; st != api.SlaveDown {
		t.Fatalf("slave timing out on tasks that succeed elsewhere is %q, want down", st)
	}
}

// TestRetriesAreBounded: a job that fails on every slave stops after
// MaxTries tries.
func TestRetriesAreBounded(t *testing.T) {
	p := quietPool(t, Config{MaxTries: 3, FailThreshold: 100})
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		p.Register("http://"+id+".invalid:1", id, 4, "")
	}
	calls := 0
	_, n, err := p.Do(context.Background(), "", func(context.Context, Target, int) error { calls++; return errors.New("refused") })
	if !errors.Is(err, ErrTriesExhausted) || calls != 3 || n != 3 {
		t.Fatalf("%d calls, %d tries, err %v; want 3 and ErrTriesExhausted", calls, n, err)
	}
}

// TestTilesDoNotTakeTheSlotsOfTasks: with every tile slot taken and tiles
// queued, a task still runs at once.
func TestTilesDoNotTakeTheSlotsOfTasks(t *testing.T) {
	p := quietPool(t, Config{})
	p.Register("http://127.0.0.1:1", "a", 2, "")
	hold := make(chan struct{})
	defer close(hold)
	for range 6 {
		go p.Run(context.Background(), Job{Class: ClassTile}, func(context.Context, Target, int) error { <-hold; return nil })
	}
	waitFor(t, func() bool { return p.QueueDepth() == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, _, err := p.Do(ctx, "", func(context.Context, Target, int) error { return nil }); err != nil {
		t.Fatalf("task behind a busy render: %v", err)
	}
}

// TestLiveSlaveIDCannotBeRepointedWithoutItsSecret: Nomad-style SecretID.
func TestLiveSlaveIDCannotBeRepointedWithoutItsSecret(t *testing.T) {
	p := quietPool(t, Config{})
	first, err := p.Join(Registration{URL: "http://127.0.0.1:1", ID: "s1"})
	if err != nil || first.Secret == "" || !first.Created {
		t.Fatalf("first registration: %+v %v", first, err)
	}
	tests := []struct {
		name    string
		reg     Registration
		wantErr error
		wantURL string
	}{
		{"another webhook without the secret", Registration{URL: "http://127.0.0.1:666", ID: "s1"}, ErrTakenID, "http://127.0.0.1:1"},
		{"another webhook with a wrong secret", Registration{URL: "http://127.0.0.1:666", ID: "s1", Secret: "guess"}, ErrTakenID, "http://127.0.0.1:1"},
		{"its own webhook without the secret (restarted)", Registration{URL: "http://127.0.0.1:1", ID: "s1"}, nil, "http://127.0.0.1:1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Join(tc.reg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if got := slaveInfo(t, p, "s1").Webhook; got != tc.wantURL {
				t.Fatalf("webhook %s, want %s", got, tc.wantURL)
			}
		})
	}
	// The restart rotated the secret: the first one no longer works.
	if err := p.Verify("s1", first.Secret); !errors.Is(err, ErrWrongSecret) {
		t.Fatalf("old secret after a restart: %v, want ErrWrongSecret", err)
	}
	r, _ := p.Join(Registration{URL: "http://127.0.0.1:1", ID: "s1"})
	if err := p.Verify("s1", r.Secret); err != nil {
		t.Fatalf("current secret: %v", err)
	}
	moved, err := p.Join(Registration{URL: "http://127.0.0.1:2", ID: "s1", Secret: r.Secret})
	if err != nil || slaveInfo(t, p, "s1").Webhook != "http://127.0.0.1:2" || moved.Secret != r.Secret {
		t.Fatalf("move with the secret: %+v %v", moved, err)
	}
	if err := p.Verify("nope", "x"); !errors.Is(err, ErrUnknownSlave) {
		t.Fatalf("unknown slave: %v", err)
	}
}
