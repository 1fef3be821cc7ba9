package master_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/faultproxy"
	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/master"
	"github.com/calclab/calclab/services/slave"
)

// TestFailedHealthCheckReasonIsShown: when a slave's health checks start
// failing, GET /slaves (and GET /slaves/{id}) shows why and when, and the
// master logs the change from healthy to failing at warn with the reason.
func TestFailedHealthCheckReasonIsShown(t *testing.T) {
	tests := []struct {
		name   string
		health http.HandlerFunc // what /health answers once the slave fails
		want   string           // in last_failure
	}{
		{"status healthy instead of ok", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(api.Health{Role: "slave", Status: "healthy", Version: api.Version})
		}, `health check: slave t1 health: status (HTTP 200): slave reports status "healthy"`},
		{"HTTP 500", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, "health check: slave t1 health: status (HTTP 500)"},
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}, "health check: slave t1 health: timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs testcluster.LockedBuffer
			c := startCluster(t, 0, func(cfg *master.Config) {
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
				cfg.FailThreshold = 1000 // stays registered and up: only the reason changes
			})
			var failing atomic.Bool
			fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if failing.Load() {
					tc.health(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(api.Health{Role: "slave", Status: "ok", Version: api.Version})
			}))
			t.Cleanup(fake.Close)
			if r, _ := register(t, c, `{"id": "t1", "webhook_url": "`+fake.URL+`"}`, nil); r.code != http.StatusOK {
				t.Fatalf("registration: %d %s", r.code, r.body)
			}
			var list []map[string]any
			call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
			if _, ok := list[0]["last_failure"]; ok {
				t.Fatalf("a slave that never failed shows a last failure: %v", list[0])
			}
			before := time.Now()
			failing.Store(true)
			deadline := time.Now().Add(10 * time.Second)
			for {
				call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
				if lf, _ := list[0]["last_failure"].(string); lf != "" {
					if !strings.HasPrefix(lf, tc.want) {
						t.Fatalf("last_failure %q, want it to start with %q", lf, tc.want)
					}
					at, _ := list[0]["last_failure_at"].(string)
					when, err := time.Parse(time.RFC3339Nano, at)
					if err != nil || when.Before(before.Add(-time.Second)) || when.After(time.Now().Add(time.Second)) {
						t.Fatalf("last_failure_at %q is not the time of the failure (%v)", at, err)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("GET /slaves never showed why the health checks fail: %v", list)
				}
				time.Sleep(20 * time.Millisecond)
			}
			one := getSlave(t, c, "t1")
			if !strings.HasPrefix(one.LastFailure, tc.want) || one.LastFailureAt == nil {
				t.Fatalf("GET /slaves/t1: %+v", one)
			}
			// Logged at warn once, with the reason, when it changed from
			// healthy to failing.
			time.Sleep(300 * time.Millisecond) // more failed checks
			out := logs.String()
			if n := strings.Count(out, `level=WARN msg="slave failing" slave=t1`); n != 1 {
				t.Fatalf("%d warnings of the change to failing, want 1:\n%s", n, out)
			}
			if !strings.Contains(out, `reason="`+strings.ReplaceAll(tc.want, `"`, `\"`)) {
				t.Fatalf("the warning does not give the reason %q:\n%s", tc.want, out)
			}
		})
	}
}

// TestASlaveBackFromADeadVMGetsTasksAtOnce: a slave whose VM was killed and
// started again at its address (a fake, package faultproxy: its old
// connections go silent, new ones are cut while it is down and reach the
// new slave after) gets its first task answered at once when it is back,
// not after a task timeout on the old, silent task stream: the master
// closes the stream of a slave that is down. A CI run on QEMU VMs saw all
// tasks run on slave-1 after slave-2 came back.
func TestASlaveBackFromADeadVMGetsTasksAtOnce(t *testing.T) {
	const taskTimeout = 2 * time.Second
	c := startCluster(t, 0, func(cfg *master.Config) {
		cfg.TaskTimeout = taskTimeout
	})
	scfg := slave.Defaults()
	scfg.Master, scfg.Logger = "", quiet
	s, err := slave.New(scfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	vm := faultproxy.New(t, strings.TrimPrefix(srv.URL, "http://"))
	if r, _ := register(t, c, `{"id": "t1", "webhook_url": "http://`+vm.Addr()+`"}`, nil); r.code != http.StatusOK {
		t.Fatalf("registration: %d %s", r.code, r.body)
	}
	submit := func(what string) time.Duration {
		t.Helper()
		var task api.Task
		start := time.Now()
		r := call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "6 * 7"}`, nil, &task)
		took := time.Since(start)
		if r.code != http.StatusOK || task.Result == nil || *task.Result != 42 {
			t.Fatalf("%s: %d %s", what, r.code, r.body)
		}
		return took
	}
	status := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			var list []api.SlaveInfo
			call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
			if len(list) == 1 && list[0].Status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the slave is not %s: %+v", want, list)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	submit("before the VM died") // opens the task stream

	vm.Silence()
	vm.Cut(true)
	status(api.SlaveDown)
	time.Sleep(300 * time.Millisecond) // health checks go on while it is down
	vm.Cut(false)
	status(api.SlaveFree)

	if took := submit("after the VM came back"); took >= taskTimeout {
		t.Fatalf("the first task after the slave came back took %s: it waited on the old stream", took)
	}
	var list []api.SlaveInfo
	call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
	if list[0].Failures != 0 {
		t.Errorf("the slave failed %d jobs after it came back (%s)", list[0].Failures, list[0].LastFailure)
	}
}
