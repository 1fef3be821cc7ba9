package master_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/master"
)

// lint fails the test for every problem promtool check metrics (promlint)
// finds in g. It is testutil.GatherAndLint's body: the testutil package
// itself needs a module (kylelemons/godebug) go.mod does not list.
func lint(t *testing.T, service string, g prometheus.Gatherer) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("%s: gathering metrics: %v", service, err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatalf("%s: %v", service, err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s: %s", service, p.Metric, p.Text)
	}
}

func names(t *testing.T, g prometheus.Gatherer) []string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		out = append(out, mf.GetName())
	}
	return out
}

// TestMetricsPassPromlintAndAnswerOperators: both services' metrics pass
// promtool's lint (counters end in _total, ...); the master and the slaves
// share no metric name but the common ones (a sum() over both does not
// count a slave's work twice); and the master exports what an operator
// asks: each slave's capacity and in-flight jobs by kind, failures and
// ejections by reason, retries, the time from acceptance to final status
// by kind, and the build.
func TestMetricsPassPromlintAndAnswerOperators(t *testing.T) {
	c := startCluster(t, 2, func(cfg *master.Config) { cfg.FailThreshold = 2 })
	call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1+2"}`, nil, nil)
	call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1/0"}`, nil, nil)
	if r := call(t, http.MethodGet, c.master+"/mandelbrot/render?width=64&height=64&max_iter=50", "", nil, nil); r.code != 200 {
		t.Fatalf("render: %d %s", r.code, r.body)
	}
	// A slave that registers, then reports "healthy" instead of "ok".
	var failing atomic.Bool
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := "ok"
		if failing.Load() {
			st = "healthy"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(api.Health{Role: "slave", Status: st, Version: api.Version})
	}))
	t.Cleanup(bad.Close)
	if r, _ := register(t, c, `{"id": "bad", "webhook_url": "`+bad.URL+`", "capacity": 3}`, nil); r.code != 200 {
		t.Fatalf("registration: %d %s", r.code, r.body)
	}
	failing.Store(true)
	var text string
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(text, `calclab_slave_ejections_total{reason="check",slave="bad"} 1`) {
		if time.Now().After(deadline) {
			t.Fatalf("the failing slave was never counted as ejected:\n%s", text)
		}
		time.Sleep(50 * time.Millisecond)
		text = string(call(t, http.MethodGet, c.master+"/metrics", "", nil, nil).body)
	}

	lint(t, "master", c.m.Metrics())
	lint(t, "slave", c.procs[0].Metrics())

	for _, want := range []string{
		`calclab_slave_jobs_done_total{slave="slave-1"}`,
		`calclab_slave_capacity{slave="slave-1"} 2`,
		`calclab_slave_capacity{slave="bad"} 3`,
		`calclab_dispatch_in_flight{kind="task",slave="slave-1"} 0`,
		`calclab_dispatch_in_flight{kind="tile",slave="slave-2"} 0`,
		`calclab_slave_failures_total{reason="unhealthy",slave="bad",source="check"}`,
		`calclab_slave_ejections_total{reason="check",slave="bad"} 1`,
		`calclab_dispatch_retries_total{kind="task"} 0`,
		`calclab_dispatch_retries_total{kind="tile"} 0`,
		`calclab_job_duration_seconds_count{kind="task",status="completed"} 1`,
		`calclab_job_duration_seconds_count{kind="task",status="failed"} 1`,
		`calclab_job_duration_seconds_bucket{kind="tile",status="completed",le="+Inf"} `,
		`calclab_build_info{goversion="` + runtime.Version() + `",revision="`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("master metrics lack %s", want)
		}
	}
	if strings.Contains(text, `calclab_job_duration_seconds_count{kind="tile",status="completed"} 0`) {
		t.Error("the render's tiles are not in calclab_job_duration_seconds")
	}
	if !strings.Contains(text, `version="`+api.Version+`"} 1`) {
		t.Errorf("calclab_build_info does not carry version %s with value 1", api.Version)
	}

	// Names both services export are only the common ones.
	shared := []string{"calclab_build_info", "calclab_http_request_duration_seconds", "calclab_http_fast_lane_requests_total"}
	slaveNames := names(t, c.procs[0].Metrics())
	for _, n := range names(t, c.m.Metrics()) {
		if strings.HasPrefix(n, "go_") || strings.HasPrefix(n, "process_") || slices.Contains(shared, n) {
			continue
		}
		if slices.Contains(slaveNames, n) {
			t.Errorf("%s is exported by the master and by the slaves: a sum() counts it twice", n)
		}
	}
	// The slave's own in-flight count stays under its own name.
	slaveText := string(call(t, http.MethodGet, c.slaves[0]+"/metrics", "", nil, nil).body)
	for _, want := range []string{"calclab_slave_in_flight ", `calclab_build_info{goversion="`} {
		if !strings.Contains(slaveText, want) {
			t.Errorf("slave metrics lack %s", want)
		}
	}

	// The failing slave's series go when it leaves.
	call(t, http.MethodDelete, c.master+"/slaves/bad", "", nil, nil)
}
