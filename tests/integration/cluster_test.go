// Package integration runs the real master and slave binaries as processes
// on random loopback ports, kills and restarts them, and checks what a user
// of the cluster would see.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
)

func TestMain(m *testing.M) { testcluster.Main(m, "calclab-it-") }

// startMaster starts a master logging at info, with its data in dataDir.
func startMaster(t *testing.T, dataDir string, extra ...string) *testcluster.Proc {
	t.Helper()
	return testcluster.StartMaster(t, dataDir, append([]string{"--log-level", "info"}, extra...)...)
}

// startSlave starts a slave of capacity 2.
func startSlave(t *testing.T, masterURL, id string, extra ...string) *testcluster.Proc {
	t.Helper()
	return testcluster.StartSlave(t, masterURL, id, append([]string{"--capacity", "2"}, extra...)...)
}

func doJSON(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, r)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return 0
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Errorf("%s %s: answer %d is not JSON: %q", method, url, res.StatusCode, data)
		}
	}
	return res.StatusCode
}

func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	res, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindSubmatch(data)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestKillSlaveUnderLoad kills a slave with SIGKILL while tasks stream in
// and checks that every accepted task completes exactly once, with the
// right result.
func TestKillSlaveUnderLoad(t *testing.T) {
	m := startMaster(t, t.TempDir())
	startSlave(t, m.URL, "slave-1")
	s2 := startSlave(t, m.URL, "slave-2")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})

	const n, workers = 600, 16
	type outcome struct {
		code int
		task api.Task
	}
	results := make([]outcome, n)
	var completed sync.WaitGroup
	jobs := make(chan int)
	var doneCount int64
	var mu sync.Mutex
	killed := make(chan struct{})
	for range workers {
		completed.Add(1)
		go func() {
			defer completed.Done()
			for i := range jobs {
				var task api.Task
				code := doJSON(t, http.MethodPost, m.URL+"/submit-task", map[string]any{
					"task_id": fmt.Sprintf("load-%d", i), "payload": fmt.Sprintf("%d * 2 + 1", i),
				}, &task)
				results[i] = outcome{code, task}
				mu.Lock()
				doneCount++
				if doneCount == n/3 {
					close(killed)
				}
				mu.Unlock()
			}
		}()
	}
	go func() {
		<-killed
		s2.Kill()
	}()
	for i := range n {
		jobs <- i
	}
	close(jobs)
	completed.Wait()

	bySlave, retried := map[string]int{}, 0
	for _, r := range results {
		bySlave[r.task.Slave]++
		if r.task.Attempts > 1 {
			retried++
		}
	}
	t.Logf("tasks by slave %v; %d tasks ran again after a failed try", bySlave, retried)
	if bySlave["slave-2"] == 0 || retried == 0 {
		t.Fatalf("the load did not exercise failover: by slave %v, retried %d", bySlave, retried)
	}
	for i, r := range results {
		want := float64(i*2 + 1)
		if r.code != http.StatusOK || r.task.Status != api.StatusCompleted || r.task.Result == nil || *r.task.Result != want {
			t.Fatalf("task %d: code %d, task %+v; want 200 completed with %v", i, r.code, r.task, want)
		}
	}
	// Exactly once: the master counted each task's final status once.
	if got := metric(t, m.URL, `calclab_tasks_total{status="completed"}`); got != n {
		t.Fatalf("master recorded %v completions for %d tasks", got, n)
	}
	var list api.TaskList
	doJSON(t, http.MethodGet, m.URL+"/tasks?limit=1000", nil, &list)
	if list.Total != n {
		t.Fatalf("GET /tasks lists %d tasks, want %d", list.Total, n)
	}
	seen := map[string]bool{}
	for _, task := range list.Tasks {
		if seen[task.ID] {
			t.Fatalf("task %s listed twice", task.ID)
		}
		seen[task.ID] = true
	}
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveDown})
}

// TestMasterRestartKeepsTasksAndSlavesReturn restarts the master on the
// same data directory and port.
func TestMasterRestartKeepsTasksAndSlavesReturn(t *testing.T) {
	data := t.TempDir()
	addr := testcluster.FreeAddr(t)
	args := []string{"--listen", addr, "--data-dir", data, "--health-interval", "200ms", "--heartbeat-interval", "200ms"}
	m := testcluster.Start(t, "master", "master", addr, args...)
	startSlave(t, m.URL, "slave-1")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	for i := range 20 {
		var task api.Task
		if code := doJSON(t, http.MethodPost, m.URL+"/submit-task", map[string]any{"task_id": fmt.Sprintf("r-%d", i), "payload": fmt.Sprintf("%d + 0.5", i)}, &task); code != http.StatusOK {
			t.Fatalf("submit %d: %d %+v", i, code, task)
		}
	}
	m.Stop(t)

	m2 := testcluster.Start(t, "master", "master", addr, args...)
	for i := range 20 {
		var task api.Task
		code := doJSON(t, http.MethodGet, fmt.Sprintf("%s/tasks/r-%d", m2.URL, i), nil, &task)
		if code != http.StatusOK || task.Status != api.StatusCompleted || *task.Result != float64(i)+0.5 {
			t.Fatalf("after restart task r-%d: %d %+v", i, code, task)
		}
	}
	// The slave notices the master forgot it and registers again.
	testcluster.WaitSlaves(t, m2.URL, map[string]string{"slave-1": api.SlaveFree})
	var task api.Task
	if code := doJSON(t, http.MethodPost, m2.URL+"/submit-task", map[string]any{"payload": "6 * 7"}, &task); code != http.StatusOK || *task.Result != 42 {
		t.Fatalf("submit after restart: %d %+v", code, task)
	}
}

// TestSlaveSIGTERMDeregisters stops a slave gracefully: it leaves the pool
// and the other slave takes the work.
func TestSlaveSIGTERMDeregisters(t *testing.T) {
	m := startMaster(t, t.TempDir())
	s1 := startSlave(t, m.URL, "slave-1")
	startSlave(t, m.URL, "slave-2")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})
	s1.Stop(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var slaves []api.SlaveInfo
		doJSON(t, http.MethodGet, m.URL+"/slaves", nil, &slaves)
		if len(slaves) == 1 && slaves[0].ID == "slave-2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGTERM of slave-1 the master lists %+v, want only slave-2", slaves)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 10 {
		var task api.Task
		if code := doJSON(t, http.MethodPost, m.URL+"/submit-task", map[string]any{"payload": "1 + 1"}, &task); code != http.StatusOK || task.Slave != "slave-2" {
			t.Fatalf("submit after slave-1 left: %d %+v", code, task)
		}
	}
}

// TestQueuedTaskWaitsForASlave: an async task accepted while the only
// slave is busy restarting still completes once a slave registers.
func TestAsyncTaskSurvivesSlaveLoss(t *testing.T) {
	m := startMaster(t, t.TempDir(), "--task-deadline", "20s", "--health-interval", "1s")
	s1 := startSlave(t, m.URL, "slave-1")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	s1.Kill()
	// Until the master notices, it still admits; the task waits for a slave.
	var task api.Task
	code := doJSON(t, http.MethodPost, m.URL+"/submit-task?async=true", map[string]any{"task_id": "late", "payload": "2 ** 10"}, &task)
	if code == http.StatusServiceUnavailable {
		t.Skip("master already saw the slave die; admission refused as designed")
	}
	if code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("async submit: %d %+v", code, task)
	}
	startSlave(t, m.URL, "slave-1b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		doJSON(t, http.MethodGet, m.URL+"/tasks/late?wait=5s", nil, &task)
		if task.Done() {
			break
		}
	}
	if task.Status != api.StatusCompleted || *task.Result != 1024 || task.Slave != "slave-1b" {
		t.Fatalf("task accepted while its slave was dead: %+v; want completed on slave-1b", task)
	}
}

// TestRequestIDFollowsTheTask: the id a client sends appears in the
// master's log line for the task and in the slave's log line for the call,
// on the task stream (the default) and over HTTP (--task-stream=false).
func TestRequestIDFollowsTheTask(t *testing.T) {
	for _, tc := range []struct {
		name      string
		flags     []string
		slaveLine string
	}{
		{"task stream", nil, `msg="evaluated on the task stream"`},
		{"HTTP", []string{"--task-stream=false"}, "path=/compute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := startMaster(t, t.TempDir(), append([]string{"--log-level", "debug"}, tc.flags...)...)
			s := startSlave(t, m.URL, "slave-1", "--log-level", "debug")
			testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
			req, _ := http.NewRequest(http.MethodPost, m.URL+"/submit-task", strings.NewReader(`{"payload": "1 + 2"}`))
			req.Header.Set(api.HeaderRequestID, "trace-me-4242")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.Header.Get(api.HeaderRequestID) != "trace-me-4242" {
				t.Fatalf("reply request id %q", res.Header.Get(api.HeaderRequestID))
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				inMaster := hasLine(m.Log(), `msg="task finished"`, "request_id=trace-me-4242")
				inSlave := hasLine(s.Log(), tc.slaveLine, "request_id=trace-me-4242")
				if inMaster && inSlave {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("request id not in both logs (master %v, slave %v)", inMaster, inSlave)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// hasLine says whether one line of log holds every one of parts.
func hasLine(log string, parts ...string) bool {
	for line := range strings.SplitSeq(log, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
