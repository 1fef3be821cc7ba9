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

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/master"
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
