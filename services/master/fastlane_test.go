package master_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/calclab/calclab/services/master"
)

// TestFastLaneAnswersAsEcho sends the same submissions to a master with
// the fast lane and to one without it (every request through net/http
// and Echo) and compares what a client sees: status, headers and body,
// the volatile fields (times, ids, slave) aside. The first master must
// have served them on the fast lane (its counter says so), the second not.
// The submissions go on connections of their own: a connection that sent
// anything else (startCluster's GET /slaves) stays with net/http.
func TestFastLaneAnswersAsEcho(t *testing.T) {
	fast := startCluster(t, 1, nil)
	slow := startCluster(t, 1, func(c *master.Config) { c.FastLane = false })
	tests := []struct {
		name, path, body string
		hdr              map[string]string
	}{
		{"sync", "/submit-task", `{"payload": "6*7"}`, nil},
		{"sync with task id", "/submit-task", `{"task_id": "same-1", "payload": "1+1"}`, nil},
		{"same task id again", "/submit-task", `{"task_id": "same-1", "payload": "1+1"}`, nil},
		{"task id conflict", "/submit-task", `{"task_id": "same-1", "payload": "2+2"}`, nil},
		{"async flag bad", "/submit-task?async=maybe", `{"payload": "1"}`, nil},
		{"operation", "/submit-task", `{"payload": {"operation": "addition", "operands": [4, 2]}}`, nil},
		{"division by zero", "/submit-task", `{"payload": "1 / 0"}`, nil},
		{"escaped payload", "/submit-task", `{"payload": "1 +\t2 \u002b 3"}`, nil},
		{"malformed JSON", "/submit-task", `{"payload": `, nil},
		{"payload missing", "/submit-task", `{}`, nil},
		{"payload not a string", "/submit-task", `{"payload": 42}`, nil},
		{"syntax error", "/submit-task", `{"payload": "4 + * 3"}`, nil},
		{"too long", "/submit-task", `{"payload": "` + strings.Repeat("1+", 3000) + `1"}`, nil},
		{"bad task id", "/submit-task", `{"task_id": "../x", "payload": "1"}`, nil},
		{"hash key and request id", "/submit-task", `{"payload": "3*3"}`, map[string]string{"X-Hash-Key": "k", "X-Request-Id": "client-id-1"}},
	}
	volatile := []string{"created_at", "finished_at", "duration_ms", "slave", "attempts"}
	clients := [2]*http.Client{{Transport: &http.Transport{}}, {Transport: &http.Transport{}}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]reply
			var bodies [2]map[string]any
			for i, c := range []cluster{fast, slow} {
				got[i] = callWith(t, clients[i], http.MethodPost, c.master+tc.path, tc.body, tc.hdr, &bodies[i])
				for _, k := range volatile {
					if _, ok := bodies[i][k]; ok {
						bodies[i][k] = "(volatile)"
					}
				}
				if id, _ := bodies[i]["task_id"].(string); strings.HasPrefix(id, "task-") {
					bodies[i]["task_id"] = "(generated)"
				}
			}
			if got[0].code != got[1].code {
				t.Fatalf("status: fast lane %d, Echo %d: %s / %s", got[0].code, got[1].code, got[0].body, got[1].body)
			}
			for _, h := range []string{"Content-Type", "Retry-After", "Location"} {
				if a, b := got[0].header.Get(h), got[1].header.Get(h); a != b {
					t.Errorf("%s: fast lane %q, Echo %q", h, a, b)
				}
			}
			for i := range got {
				if id := got[i].header.Get("X-Request-Id"); id == "" || tc.hdr != nil && id != tc.hdr["X-Request-Id"] {
					t.Errorf("master %d: X-Request-Id %q", i, id)
				}
			}
			a, _ := json.Marshal(bodies[0])
			b, _ := json.Marshal(bodies[1])
			if string(a) != string(b) {
				t.Errorf("body:\nfast lane %s\nEcho      %s", a, b)
			}
		})
	}
	// An async task may finish before its commit is acknowledged (200) or
	// not (202 + Location), on either master: not a comparison, a check.
	var task map[string]any
	r := callWith(t, clients[0], http.MethodPost, fast.master+"/submit-task?async=true", `{"task_id": "async-1", "payload": "2**10"}`, nil, &task)
	switch {
	case r.code == http.StatusAccepted && r.header.Get("Location") != "/tasks/async-1",
		r.code != http.StatusAccepted && r.code != http.StatusOK:
		t.Fatalf("async on the fast lane: %d, Location %q: %s", r.code, r.header.Get("Location"), r.body)
	}
	call(t, http.MethodGet, fast.master+"/tasks/async-1?wait=5s", "", nil, &task)
	if task["status"] != "completed" || task["result"] != 1024.0 {
		t.Fatalf("the async task on the fast lane ended as %v", task)
	}
	for i, want := range []float64{float64(len(tests)) + 1, 0} {
		c := []cluster{fast, slow}[i]
		r := call(t, http.MethodGet, c.master+"/metrics", "", nil, nil)
		if n := metricValue(t, r.body, `calclab_http_fast_lane_requests_total{service="master"}`); n != want {
			t.Errorf("master %d served %v requests on the fast lane, want %v", i, n, want)
		}
	}
}
