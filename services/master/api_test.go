package master_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/calc"
	"github.com/calclab/calclab/services/master"
	"github.com/calclab/calclab/services/slave"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type cluster struct {
	master string
	m      *master.Server
	slaves []string
	procs  []*slave.Slave
}

// secret is the X-Slave-Secret header of slave i (0-based), as the master
// gave it at registration.
func (c cluster) secret(i int) map[string]string {
	return map[string]string{api.HeaderSlaveSecret: c.procs[i].Secret()}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startCluster runs a master and n slaves in this process on loopback.
func startCluster(t *testing.T, n int, mutate func(*master.Config)) cluster {
	t.Helper()
	cfg := master.Defaults()
	cfg.DataDir = t.TempDir()
	cfg.Logger = quiet
	cfg.HealthInterval = 100 * time.Millisecond
	cfg.HeartbeatInterval = 100 * time.Millisecond
	if mutate != nil {
		mutate(&cfg)
	}
	m, err := master.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Serve(ctx, ln); close(done) }()
	c := cluster{master: "http://" + ln.Addr().String(), m: m}
	var stops []func()
	for i := range n {
		scfg := slave.Defaults()
		scfg.Master, scfg.ID, scfg.Capacity, scfg.Logger, scfg.Token = c.master, fmt.Sprintf("slave-%d", i+1), 2, quiet, cfg.Token
		s, err := slave.New(scfg)
		if err != nil {
			t.Fatal(err)
		}
		sln := listen(t)
		sctx, scancel := context.WithCancel(context.Background())
		sdone := make(chan struct{})
		go func() { s.Serve(sctx, sln); close(sdone) }()
		stops = append(stops, func() { scancel(); <-sdone })
		c.slaves = append(c.slaves, "http://"+sln.Addr().String())
		c.procs = append(c.procs, s)
	}
	t.Cleanup(func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for n > 0 {
		var list []api.SlaveInfo
		call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
		if len(list) == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d slaves registered", len(list), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

type reply struct {
	code   int
	header http.Header
	body   []byte
}

func call(t *testing.T, method, url, body string, hdr map[string]string, out any) reply {
	t.Helper()
	return callWith(t, http.DefaultClient, method, url, body, hdr, out)
}

// callWith is call with client: its own connections.
func callWith(t *testing.T, client *http.Client, method, url, body string, hdr map[string]string, out any) reply {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d reply is not JSON: %q", method, url, res.StatusCode, data)
		}
	}
	return reply{res.StatusCode, res.Header, data}
}

func TestSubmitTaskResults(t *testing.T) {
	c := startCluster(t, 2, nil)
	tests := []struct {
		name    string
		body    string
		want    float64
		display string
	}{
		{"seed expression", `{"payload": "4 * (2 + 3)"}`, 20, "4 * (2 + 3)"},
		{"right-associative power", `{"payload": "2 ** 3 ** 2"}`, 512, ""},
		{"unary minus below power", `{"payload": "-2 ** 2"}`, -4, ""},
		{"decimals", `{"payload": "0.1 + 0.2 * 10"}`, 2.1, ""},
		{"seed operation addition", `{"payload": {"operation": "addition", "operands": [5, 3]}}`, 8, "addition(5, 3)"},
		{"seed operation over 3 operands", `{"payload": {"operation": "subtraction", "operands": [10, 3, 2]}}`, 5, ""},
		{"seed operation power", `{"payload": {"operation": "power", "operands": [2, 10]}}`, 1024, ""},
		{"seed operation modulo", `{"payload": {"operation": "modulo", "operands": [17, 5]}}`, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var task api.Task
			r := call(t, http.MethodPost, c.master+"/submit-task", tc.body, nil, &task)
			if r.code != http.StatusOK || task.Status != api.StatusCompleted || task.Result == nil {
				t.Fatalf("got %d %s", r.code, r.body)
			}
			if diff := *task.Result - tc.want; diff > 1e-9 || diff < -1e-9 {
				t.Fatalf("result %v, want %v", *task.Result, tc.want)
			}
			if tc.display != "" && task.Expression != tc.display {
				t.Fatalf("expression shown as %q, want %q", task.Expression, tc.display)
			}
			if !strings.HasPrefix(task.Slave, "slave-") || task.Attempts != 1 || task.FinishedAt == nil {
				t.Fatalf("task bookkeeping wrong: %+v", task)
			}
			if r.header.Get(api.HeaderRequestID) == "" {
				t.Fatal("reply has no request id header")
			}
		})
	}
}

func TestBadInputIsRejectedClearly(t *testing.T) {
	c := startCluster(t, 1, nil)
	huge := `{"payload": "` + strings.Repeat("1+", 3000) + `1"}`
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		code     int
		contains string
	}{
		{"malformed JSON", "POST", "/submit-task", `{"payload": `, 400, "malformed JSON"},
		{"empty body", "POST", "/submit-task", ``, 400, "empty"},
		{"payload missing", "POST", "/submit-task", `{}`, 422, "payload"},
		{"payload wrong type", "POST", "/submit-task", `{"payload": 42}`, 422, "payload"},
		{"syntax error", "POST", "/submit-task", `{"payload": "4 + * 3"}`, 422, "invalid expression"},
		{"unbalanced", "POST", "/submit-task", `{"payload": "(1 + 2"}`, 422, "invalid expression"},
		{"variables not allowed", "POST", "/submit-task", `{"payload": "x + 1"}`, 422, "invalid expression"},
		{"function not allowed", "POST", "/submit-task", `{"payload": "exit(1)"}`, 422, "invalid expression"},
		{"expression too long", "POST", "/submit-task", huge, 413, "4096"},
		{"body too large", "POST", "/submit-task", `{"payload": "1", "x": "` + strings.Repeat("a", 70000) + `"}`, 413, "limit"},
		{"too deep", "POST", "/submit-task", `{"payload": "` + strings.Repeat("(", 100) + "1" + strings.Repeat(")", 100) + `"}`, 422, "depth"},
		{"division by zero", "POST", "/submit-task", `{"payload": "1 / 0"}`, 422, "division by zero"},
		{"tower of powers", "POST", "/submit-task", `{"payload": "9**9**9**9"}`, 422, "evaluation failed"},
		{"unknown operation", "POST", "/submit-task", `{"payload": {"operation": "sqrt", "operands": [4, 2]}}`, 422, "sqrt"},
		{"one operand", "POST", "/submit-task", `{"payload": {"operation": "addition", "operands": [4]}}`, 422, "operand"},
		{"bad task id", "POST", "/submit-task", `{"task_id": "../etc", "payload": "1"}`, 422, "task_id"},
		{"bad async flag", "POST", "/submit-task?async=maybe", `{"payload": "1"}`, 400, "async"},
		{"empty batch", "POST", "/submit-batch", `{"expressions": []}`, 422, "expressions"},
		{"unknown status filter", "GET", "/tasks?status=lost", ``, 400, "status"},
		{"limit out of range", "GET", "/tasks?limit=0", ``, 400, "limit"},
		{"bad wait", "GET", "/tasks/x?wait=forever", ``, 400, "wait"},
		{"unknown task", "GET", "/tasks/nope", ``, 404, "not found"},
		{"unknown slave", "GET", "/slaves/nope", ``, 404, "not found"},
		{"drain unknown slave", "DELETE", "/slaves/nope", ``, 404, "not found"},
		{"unknown endpoint", "GET", "/nope", ``, 404, "no such endpoint"},
		{"webhook missing", "POST", "/register-slave", `{}`, 422, "webhook_url"},
		{"webhook not a URL", "POST", "/register-slave", `{"webhook_url": "::"}`, 422, "webhook_url"},
		{"webhook bad scheme", "POST", "/register-slave", `{"webhook_url": "file:///etc/passwd"}`, 422, "http"},
		{"webhook outside allowed networks", "POST", "/register-slave", `{"webhook_url": "http://10.1.2.3:80"}`, 403, "outside the allowed networks"},
		{"webhook metadata address", "POST", "/register-slave", `{"webhook": "http://169.254.169.254:80"}`, 403, "outside the allowed networks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body map[string]any
			start := time.Now()
			r := call(t, tc.method, c.master+tc.path, tc.body, nil, &body)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d; body %s", r.code, tc.code, r.body)
			}
			msg, _ := body["error"].(string)
			if !strings.Contains(msg, tc.contains) {
				t.Fatalf("error %q does not mention %q", msg, tc.contains)
			}
			if strings.Contains(string(r.body), "goroutine ") || strings.Contains(string(r.body), ".go:") {
				t.Fatalf("reply leaks a stack trace: %s", r.body)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s", d)
			}
		})
	}
	// Nothing was stored by rejected requests, and the slave is healthy.
	var list api.TaskList
	call(t, http.MethodGet, c.master+"/tasks", "", nil, &list)
	for _, task := range list.Tasks {
		if !strings.Contains(task.Error, "evaluation failed") {
			t.Fatalf("a rejected request left a task behind: %+v", task)
		}
	}
	var h api.Health
	if r := call(t, http.MethodGet, c.slaves[0]+"/health", "", nil, &h); r.code != 200 || h.Status != "ok" {
		t.Fatalf("slave unhealthy after bad input: %d %s", r.code, r.body)
	}
}

func TestIdempotentTaskID(t *testing.T) {
	c := startCluster(t, 2, nil)
	var first, second api.Task
	call(t, http.MethodPost, c.master+"/submit-task", `{"task_id": "same", "payload": "6 * 7"}`, nil, &first)
	r := call(t, http.MethodPost, c.master+"/submit-task", `{"task_id": "same", "payload": "6 * 7"}`, nil, &second)
	if r.code != 200 || first.ID != "same" || second.CreatedAt != first.CreatedAt || *second.Result != 42 {
		t.Fatalf("resubmission: %d %+v vs %+v; want the same task", r.code, second, first)
	}
	var e api.Error
	if r := call(t, http.MethodPost, c.master+"/submit-task", `{"task_id": "same", "payload": "1"}`, nil, &e); r.code != http.StatusConflict {
		t.Fatalf("same id, other payload: %d %s; want 409", r.code, r.body)
	}
	var list api.TaskList
	call(t, http.MethodGet, c.master+"/tasks", "", nil, &list)
	if list.Total != 1 {
		t.Fatalf("%d tasks stored for one task id", list.Total)
	}
}

func TestAsyncAndLongPoll(t *testing.T) {
	c := startCluster(t, 1, nil)
	var task api.Task
	r := call(t, http.MethodPost, c.master+"/submit-task?async=true", `{"payload": "2 ** 16"}`, nil, &task)
	if r.code != http.StatusAccepted && r.code != http.StatusOK {
		t.Fatalf("async submit: %d %s", r.code, r.body)
	}
	if r.code == http.StatusAccepted && r.header.Get("Location") != "/tasks/"+task.ID {
		t.Fatalf("Location %q", r.header.Get("Location"))
	}
	var got api.Task
	call(t, http.MethodGet, c.master+"/tasks/"+task.ID+"?wait=5s", "", nil, &got)
	if got.Status != api.StatusCompleted || *got.Result != 65536 {
		t.Fatalf("long-poll: %+v", got)
	}
}

func TestBatchKeepsOrderAndReportsErrorsInPlace(t *testing.T) {
	c := startCluster(t, 2, nil)
	exprs := make([]string, 2000)
	for i := range exprs {
		exprs[i] = fmt.Sprintf("%d * 3", i)
	}
	exprs[7] = "1 / 0"
	exprs[500] = "(("
	body, _ := json.Marshal(api.BatchRequest{Expressions: exprs})
	var resp api.BatchResponse
	r := call(t, http.MethodPost, c.master+"/submit-batch", string(body), nil, &resp)
	if r.code != 200 || resp.Count != 2000 || len(resp.Results) != 2000 || resp.Failed != 2 {
		t.Fatalf("batch: %d count=%d results=%d failed=%d", r.code, resp.Count, len(resp.Results), resp.Failed)
	}
	for i, it := range resp.Results {
		switch i {
		case 7:
			if !strings.Contains(it.Error, "division by zero") {
				t.Fatalf("item 7: %+v", it)
			}
		case 500:
			if !strings.Contains(it.Error, "invalid expression") {
				t.Fatalf("item 500: %+v", it)
			}
		default:
			if it.Result == nil || *it.Result != float64(i*3) {
				t.Fatalf("item %d: %+v, want %d", i, it, i*3)
			}
		}
	}
}

// TestBatchErrorsAreTheMastersOwn: the master no longer checks every
// expression before sending it, but each invalid one still gets exactly the
// error calc.Check gives it, whether a slave saw it (it fails there and is
// classified on the way back), it was too long to send, or no slave could
// run the batch at all.
func TestBatchErrorsAreTheMastersOwn(t *testing.T) {
	long := strings.Repeat("1+", calc.DefaultLimits.MaxLen) + "1"
	invalid := func(expr string) string {
		err := calc.Check(expr, calc.DefaultLimits)
		if err == nil {
			t.Fatalf("%q: calc.Check accepts it", expr)
		}
		return "invalid expression: " + err.Error()
	}
	tests := []struct {
		name   string
		slaves int
		exprs  []string
		code   int
		want   []string // error of each item; "" for a result
	}{
		{"on slaves", 2, []string{"(1", "2 ** 3", long, "x + 1", "1 / 0"}, 200,
			[]string{invalid("(1"), "", invalid(long), invalid("x + 1"), "evaluation failed: division by zero at position 2"}},
		{"no slave, all invalid", 0, []string{"(1", long, "9 9"}, 200,
			[]string{invalid("(1"), invalid(long), invalid("9 9")}},
		{"no slave, one valid", 0, []string{"(1", "1 + 1"}, 503, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, tc.slaves, nil)
			body, _ := json.Marshal(api.BatchRequest{Expressions: tc.exprs})
			var resp api.BatchResponse
			r := call(t, http.MethodPost, c.master+"/submit-batch", string(body), nil, &resp)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			if tc.code != 200 {
				return
			}
			if len(resp.Results) != len(tc.want) {
				t.Fatalf("%d results for %d expressions", len(resp.Results), len(tc.want))
			}
			failed := 0
			for i, it := range resp.Results {
				if it.Error != tc.want[i] || (it.Error == "") != (it.Result != nil) {
					t.Errorf("item %d: error %q result %v, want error %q", i, it.Error, it.Result, tc.want[i])
				}
				if it.Error != "" {
					failed++
				}
			}
			if resp.Failed != failed {
				t.Errorf("failed %d, want %d", resp.Failed, failed)
			}
		})
	}
}

func TestNoSlaveAnswers503WithRetryAfter(t *testing.T) {
	c := startCluster(t, 0, nil)
	var e api.Error
	r := call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1 + 1"}`, nil, &e)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(e.Error, "no healthy slave") {
		t.Fatalf("no slaves: %d %s (Retry-After %q)", r.code, r.body, r.header.Get("Retry-After"))
	}
	var list api.TaskList
	call(t, http.MethodGet, c.master+"/tasks", "", nil, &list)
	if list.Total != 0 {
		t.Fatal("a refused task was stored")
	}
}

func TestRegistrationNeedsToken(t *testing.T) {
	c := startCluster(t, 1, func(cfg *master.Config) { cfg.Token = "s3cret" })
	body := `{"webhook_url": "` + c.slaves[0] + `"}`
	tests := []struct {
		name string
		auth string
		code int
	}{
		{"no token", "", 401},
		{"wrong token", "Bearer nope", 401},
		{"right token", "Bearer s3cret", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			var out map[string]any
			if r := call(t, http.MethodPost, c.master+"/register-slave", body, h, &out); r.code != tc.code {
				t.Fatalf("%d %s, want %d", r.code, r.body, tc.code)
			}
		})
	}
	// The slave itself registered with the token.
	var list []api.SlaveInfo
	call(t, http.MethodGet, c.master+"/slaves", "", nil, &list)
	if len(list) != 1 || list[0].ID != "slave-1" {
		t.Fatalf("slaves %+v", list)
	}
}

func TestAllowedNetworksAreConfigurable(t *testing.T) {
	c := startCluster(t, 0, func(cfg *master.Config) {
		cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("192.168.56.0/24")}
	})
	var e api.Error
	if r := call(t, http.MethodPost, c.master+"/register-slave", `{"webhook_url": "http://127.0.0.1:6001"}`, nil, &e); r.code != 403 {
		t.Fatalf("loopback webhook with only the lab network allowed: %d %s", r.code, r.body)
	}
	// A lab-network webhook passes the network check and gets as far as
	// the /health probe (nothing answers there in this test).
	if r := call(t, http.MethodPost, c.master+"/register-slave", `{"webhook": "http://192.168.56.11:6001"}`, nil, &e); r.code != 422 || !strings.Contains(e.Error, "/health") {
		t.Fatalf("lab-network webhook: %d %s; want 422 naming the /health check", r.code, r.body)
	}
}

func TestDrainMovesWorkToOtherSlave(t *testing.T) {
	c := startCluster(t, 2, nil)
	// Both slaves get work first, so each has a task stream from the master.
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() { call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1 + 1"}`, nil, nil) })
	}
	wg.Wait()
	streams := func(i int) float64 {
		return metricValue(t, call(t, http.MethodGet, c.slaves[i]+"/metrics", "", nil, nil).body, "calclab_slave_streams_open")
	}
	if streams(0) != 1 || streams(1) != 1 {
		t.Fatalf("streams open before the drain: slave-1 %v, slave-2 %v; want one each", streams(0), streams(1))
	}
	var out map[string]string
	r := call(t, http.MethodDelete, c.master+"/slaves/slave-1", "", c.secret(0), &out)
	if (r.code != 200 && r.code != 202) || (out["status"] != "removed" && out["status"] != "draining") {
		t.Fatalf("drain: %d %s", r.code, r.body)
	}
	for range 20 {
		var task api.Task
		call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1"}`, nil, &task)
		if task.Slave != "slave-2" {
			t.Fatalf("task ran on %q after slave-1 was drained", task.Slave)
		}
	}
	// The master closes its stream to the slave that left.
	for deadline := time.Now().Add(3 * time.Second); streams(0) != 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("slave-1 still has %v streams open after it was drained", streams(0))
		}
	}
	if streams(1) != 1 {
		t.Fatalf("slave-2 has %v streams open, want 1", streams(1))
	}
}

func TestMetricsExposeTasksAndSlaves(t *testing.T) {
	c := startCluster(t, 2, nil)
	call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1"}`, nil, nil)
	call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1/0"}`, nil, nil)
	r := call(t, http.MethodGet, c.master+"/metrics", "", nil, nil)
	for _, want := range []string{
		`calclab_tasks_total{status="completed"} 1`,
		`calclab_tasks_total{status="failed"} 1`,
		`calclab_slave_up{slave="slave-1"} 1`,
		`calclab_dispatch_in_flight{kind="task",slave="slave-2"} 0`,
		`calclab_queue_depth 0`,
		`calclab_http_request_duration_seconds_bucket{code="200",method="POST",route="/submit-task",service="master"`,
	} {
		if !bytes.Contains(r.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// A slave that leaves takes its series with it.
	call(t, http.MethodDelete, c.master+"/slaves/slave-1", "", c.secret(0), nil)
	time.Sleep(50 * time.Millisecond)
	r = call(t, http.MethodGet, c.master+"/metrics", "", nil, nil)
	if bytes.Contains(r.body, []byte(`slave="slave-1"`)) {
		t.Error("series of a removed slave still exported")
	}
}

// TestConcurrentTasksAreGroupedAndEachRecordedOnce: when tasks arrive
// together, the master sends them to a slave in groups (several frames in
// one write on the task stream, or one POST /compute/batch without it);
// every task still gets its own correct result, recorded once.
func TestConcurrentTasksAreGroupedAndEachRecordedOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		stream  bool
		grouped func(t *testing.T, slaveMetrics []byte) int
	}{
		{"task stream", true, func(t *testing.T, m []byte) int {
			return int(metricValue(t, m, "calclab_slave_stream_expressions_total") - metricValue(t, m, "calclab_slave_stream_groups_total"))
		}},
		{"HTTP", false, func(t *testing.T, m []byte) int {
			return bytes.Count(m, []byte(`route="/compute/batch"`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startCluster(t, 2, func(cfg *master.Config) { cfg.TaskStream = tc.stream })
			const n = 400
			var wg sync.WaitGroup
			errs := make(chan string, n)
			sem := make(chan struct{}, 32)
			for i := range n {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					var task api.Task
					body := fmt.Sprintf(`{"task_id": "g-%d", "payload": "%d * 3 + 1"}`, i, i)
					r := call(t, http.MethodPost, c.master+"/submit-task", body, nil, &task)
					if r.code != 200 || task.Result == nil || *task.Result != float64(i*3+1) || task.Attempts != 1 {
						errs <- fmt.Sprintf("task %d: %d %s", i, r.code, r.body)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Fatal(e)
			}
			m := call(t, http.MethodGet, c.master+"/metrics", "", nil, nil)
			if !bytes.Contains(m.body, []byte(fmt.Sprintf(`calclab_tasks_total{status="completed"} %d`, n))) {
				t.Fatalf("master did not count exactly %d completions", n)
			}
			grouped := 0
			for _, s := range c.slaves {
				grouped += tc.grouped(t, call(t, http.MethodGet, s+"/metrics", "", nil, nil).body)
			}
			if grouped == 0 {
				t.Fatal("32 concurrent clients, yet no task was sent in a group")
			}
		})
	}
}

// metricValue is the value of an unlabelled series in a /metrics body (0
// when it is absent).
func metricValue(t *testing.T, body []byte, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestConsistentHashSendsEachTaskAlone: grouping would move tasks off the
// slave their key picks, so with consistent-hash every task is its own call.
func TestConsistentHashSendsEachTaskAlone(t *testing.T) {
	c := startCluster(t, 2, func(cfg *master.Config) { cfg.Policy = "consistent-hash" })
	// Concurrent tasks queue up, as in the grouping test above.
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call(t, http.MethodPost, c.master+"/submit-task", fmt.Sprintf(`{"payload": "%d"}`, i), map[string]string{api.HeaderHashKey: "user-42"}, nil)
		}()
	}
	wg.Wait()
	// One at a time (no slave at capacity), one key always lands on one slave.
	first := ""
	for i := range 20 {
		var task api.Task
		call(t, http.MethodPost, c.master+"/submit-task", fmt.Sprintf(`{"payload": "%d"}`, i), map[string]string{api.HeaderHashKey: "user-7"}, &task)
		if first == "" {
			first = task.Slave
		}
		if task.Slave != first {
			t.Fatalf("one hash key landed on %s and %s", first, task.Slave)
		}
	}
	for _, s := range c.slaves {
		r := call(t, http.MethodGet, s+"/metrics", "", nil, nil)
		if bytes.Contains(r.body, []byte(`route="/compute/batch"`)) {
			t.Fatal("a task was grouped under consistent-hash")
		}
	}
}

// TestOversizedTaskIsRejectedBeforeItIsStored: an operation with more
// operands than --max-operands (the review's 32,000 operands made a 96 KB
// stored task) and a request too big to store get a 413 naming the limit,
// and nothing is stored.
func TestOversizedTaskIsRejectedBeforeItIsStored(t *testing.T) {
	c := startCluster(t, 1, nil)
	ones := strings.TrimSuffix(strings.Repeat("1,", 32000), ",")
	long := strings.TrimSuffix(strings.Repeat("1.2345678901234567e+300,", 250), ",")
	tests := []struct {
		name   string
		body   string
		hdr    map[string]string
		field  string
		substr string
	}{
		{"32000 operands", `{"payload": {"operation": "addition", "operands": [` + ones + `]}}`, nil, "payload.operands", "32000 operands, limit is 256"},
		{"hash key too long to store", `{"payload": "1 + 1"}`, map[string]string{api.HeaderHashKey: strings.Repeat("k", 9000)}, "payload", "limit is 8192"},
		{"operands and hash key over the stored size", `{"payload": {"operation": "addition", "operands": [` + long + `]}}`, map[string]string{api.HeaderHashKey: strings.Repeat("k", 3000)}, "payload", "limit is 8192"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e api.Error
			r := call(t, http.MethodPost, c.master+"/submit-task?async=true", tc.body, tc.hdr, &e)
			if r.code != http.StatusRequestEntityTooLarge || e.Field != tc.field || !strings.Contains(e.Error, tc.substr) {
				t.Fatalf("got %d %+v; want 413 on %s saying %q", r.code, e, tc.field, tc.substr)
			}
		})
	}
	var list api.TaskList
	call(t, http.MethodGet, c.master+"/tasks", "", nil, &list)
	if list.Total != 0 {
		t.Fatalf("rejected tasks were stored: %+v", list.Tasks)
	}
	var task api.Task
	if r := call(t, http.MethodPost, c.master+"/submit-task", `{"payload": {"operation": "addition", "operands": [`+strings.TrimSuffix(strings.Repeat("1,", 256), ",")+`]}}`, nil, &task); r.code != http.StatusOK || *task.Result != 256 {
		t.Fatalf("256 operands (the limit): %d %s", r.code, r.body)
	}
}

// TestFailedTaskCarriesTypedReason: a client tells an evaluation error from
// an unavailable cluster by the task's reason, not by its error text.
func TestFailedTaskCarriesTypedReason(t *testing.T) {
	c := startCluster(t, 1, nil)
	var task api.Task
	if r := call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1 / (2 - 2)"}`, nil, &task); r.code != http.StatusUnprocessableEntity ||
		task.Status != api.StatusFailed || task.Reason != api.ReasonEvaluation {
		t.Fatalf("division by zero: %d %s; want 422 failed with reason evaluation", r.code, r.body)
	}
	var ok api.Task
	if r := call(t, http.MethodPost, c.master+"/submit-task", `{"payload": "1 + 1"}`, nil, &ok); r.code != http.StatusOK || ok.Reason != "" {
		t.Fatalf("completed task: %d %s; want 200 without a reason", r.code, r.body)
	}
}
