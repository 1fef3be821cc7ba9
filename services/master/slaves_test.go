package master_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/master"
)

// fakeSlave answers /health as a healthy calclab slave and everything
// else with compute.
func fakeSlave(t *testing.T, compute http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(api.Health{Role: "slave", Status: "ok", Version: api.Version})
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		compute(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func jsonAnswer(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func register(t *testing.T, c cluster, body string, hdr map[string]string) (reply, api.RegisterResponse) {
	t.Helper()
	var out api.RegisterResponse
	r := call(t, http.MethodPost, c.master+"/register-slave", body, hdr, &out)
	return r, out
}

// TestForgedRegistrationCannotTakeOverASlave: a token holder cannot
// re-point a live slave id to its own webhook, heartbeat or drain a slave
// without its secret, or register something that is not a calclab slave.
func TestForgedRegistrationCannotTakeOverASlave(t *testing.T) {
	auth := map[string]string{"Authorization": "Bearer tok"}
	c := startCluster(t, 1, func(cfg *master.Config) { cfg.Token = "tok" })
	evil := fakeSlave(t, jsonAnswer(200, `{"result": 1337}`))
	notSlave := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") }))
	defer notSlave.Close()

	with := func(h map[string]string, kv ...string) map[string]string {
		out := map[string]string{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		code   int
	}{
		{"re-point slave-1 to another webhook", "POST", "/register-slave", `{"id": "slave-1", "webhook_url": "` + evil.URL + `"}`, auth, 409},
		{"re-point with a guessed secret", "POST", "/register-slave", `{"id": "slave-1", "webhook_url": "` + evil.URL + `"}`, with(auth, api.HeaderSlaveSecret, "guess"), 409},
		{"register a webhook that is not a calclab slave", "POST", "/register-slave", `{"webhook_url": "` + notSlave.URL + `"}`, auth, 422},
		{"heartbeat without the secret", "POST", "/slaves/slave-1/heartbeat", `{}`, auth, 403},
		{"heartbeat with a wrong secret", "POST", "/slaves/slave-1/heartbeat", `{}`, with(auth, api.HeaderSlaveSecret, "guess"), 403},
		{"drain without the secret", "DELETE", "/slaves/slave-1", ``, auth, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := call(t, tc.method, c.master+tc.path, tc.body, tc.hdr, nil); r.code != tc.code {
				t.Fatalf("%d %s, want %d", r.code, r.body, tc.code)
			}
		})
	}
	var list []api.SlaveInfo
	call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
	if len(list) != 1 || list[0].Webhook != c.slaves[0] || list[0].Status == api.SlaveDraining {
		t.Fatalf("after forged calls the pool is %+v; want slave-1 alone, at %s, not draining", list, c.slaves[0])
	}
	var task api.Task
	if call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "2 + 2"}`, nil, &task); task.Result == nil || *task.Result != 4 {
		t.Fatalf("2 + 2 after a forged registration: %+v", task)
	}
	// The slave itself, with its secret, may heartbeat.
	if r := call(t, http.MethodPost, c.master+"/slaves/slave-1/heartbeat", `{}`, with(auth, api.HeaderSlaveSecret, c.procs[0].Secret()), nil); r.code != 200 {
		t.Fatalf("heartbeat with the secret: %d %s", r.code, r.body)
	}
	// A new registration gets a secret.
	if r, out := register(t, c, `{"webhook_url": "`+evil.URL+`"}`, auth); r.code != 200 || len(out.Secret) < 32 {
		t.Fatalf("registration: %d %s; want 200 with a secret", r.code, r.body)
	}
}

// TestSlaveManagementRefusesNonJSON: register, heartbeat and drain answer
// 415 to a form or text/plain POST (what a web page can send cross-site);
// task submission stays lenient.
func TestSlaveManagementRefusesNonJSON(t *testing.T) {
	c := startCluster(t, 1, nil)
	body := `{"webhook_url": "` + c.slaves[0] + `"}`
	tests := []struct {
		name, method, path, body, ctype string
		code                            int
	}{
		{"register as text/plain", "POST", "/register-slave", body, "text/plain", 415},
		{"register as a form", "POST", "/register-slave", "webhook_url=" + c.slaves[0], "application/x-www-form-urlencoded", 415},
		{"register with no content type", "POST", "/register-slave", body, "", 415},
		{"heartbeat as text/plain", "POST", "/slaves/slave-1/heartbeat", `{}`, "text/plain", 415},
		{"drain as a form", "DELETE", "/slaves/slave-1", ``, "application/x-www-form-urlencoded", 415},
		{"register as JSON with a charset", "POST", "/register-slave", body, "application/json; charset=utf-8", 200},
		{"task with no content type", "POST", "/submit-task", `{"payload": "1"}`, "", 200},
		{"task as text/plain", "POST", "/submit-task", `{"payload": "1"}`, "text/plain", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if r := call(t, tc.method, c.master+tc.path, tc.body, map[string]string{"Content-Type": tc.ctype}, nil); r.code != tc.code {
				t.Fatalf("%d %s, want %d", r.code, r.body, tc.code)
			}
		})
	}
}

// TestBadSlaveAnswersRunElsewhere: a slave that redirects, answers 200 {}
// or garbage, or hangs on tasks while its /health passes never decides a
// task's result: every task completes correctly on the good slave, the
// redirect is not followed, and the bad slave is ejected.
func TestBadSlaveAnswersRunElsewhere(t *testing.T) {
	var followed atomic.Int32
	elsewhere := fakeSlave(t, func(w http.ResponseWriter, _ *http.Request) {
		followed.Add(1)
		jsonAnswer(200, `{"result": 1337}`)(w, nil)
	})
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"redirecting", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
		}},
		{"empty-answering", jsonAnswer(200, `{}`)},
		{"garbage-answering", jsonAnswer(200, `{"results": "lol"`)},
		{"hanging", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 1, func(cfg *master.Config) {
				cfg.Policy = "round-robin"
				cfg.TaskTimeout = 300 * time.Millisecond
				cfg.HealthInterval = 50 * time.Millisecond
			})
			bad := fakeSlave(t, tc.handler)
			if r, _ := register(t, c, `{"id": "bad", "webhook_url": "`+bad.URL+`"}`, nil); r.code != 200 {
				t.Fatalf("register the bad slave: %d %s", r.code, r.body)
			}
			slow := 0
			for i := range 20 {
				start := time.Now()
				var task api.Task
				r := call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "2 + 2"}`, nil, &task)
				if r.code != 200 || task.Result == nil || *task.Result != 4 {
					t.Fatalf("task %d: %d %s; want 200 with 4", i, r.code, r.body)
				}
				if time.Since(start) >= 300*time.Millisecond {
					slow++
				}
			}
			if slow > 3 {
				t.Errorf("%d of 20 tasks waited a full try timeout: the bad slave was not ejected", slow)
			}
			s := getSlave(t, c, "bad")
			if s.Status != api.SlaveDown {
				t.Errorf("bad slave is %q after failing every task, want down (its /health passes)", s.Status)
			}
		})
	}
	if n := followed.Load(); n != 0 {
		t.Fatalf("the master followed a slave's redirect %d times", n)
	}
}

func getSlave(t *testing.T, c cluster, id string) api.SlaveInfo {
	t.Helper()
	var s api.SlaveInfo
	if r := call(t, http.MethodGet, c.master+"/slaves/"+id, "", nil, &s); r.code != 200 {
		t.Fatalf("GET /slaves/%s: %d %s", id, r.code, r.body)
	}
	return s
}
