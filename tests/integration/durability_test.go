package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
)

// submitAsync posts one async task and returns the status code (0 on a
// transport error, e.g. the master was killed) and the body.
func submitAsync(client *http.Client, url, id string, payload any, hdr map[string]string) (int, []byte) {
	b, _ := json.Marshal(map[string]any{"task_id": id, "payload": payload})
	req, _ := http.NewRequest(http.MethodPost, url+"/submit-task?async=true", bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	return res.StatusCode, data
}

// waitTask polls GET /tasks/{id}?wait until the task is final (or 60s).
func waitTask(t *testing.T, url, id string) (int, api.Task) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var task api.Task
		code := doJSON(t, http.MethodGet, url+"/tasks/"+id+"?wait=10s", nil, &task)
		if code != http.StatusOK || task.Done() || time.Now().After(deadline) {
			return code, task
		}
	}
}

// TestKill9UnderAsyncLoadKeepsEveryAcknowledgedTask kills the master with
// SIGKILL while clients submit async tasks, restarts it on the same data
// directory, and checks that every task answered 202 (or 200) is there and
// completes with the right result: a 202 is only sent once the task is on
// disk.
func TestKill9UnderAsyncLoadKeepsEveryAcknowledgedTask(t *testing.T) {
	data := t.TempDir()
	addr := testcluster.FreeAddr(t)
	args := []string{"--listen", addr, "--data-dir", data, "--health-interval", "200ms", "--heartbeat-interval", "200ms", "--log-level", "info"}
	m := testcluster.Start(t, "master", "master", addr, args...)
	startSlave(t, m.URL, "slave-1")
	startSlave(t, m.URL, "slave-2")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})

	var (
		mu    sync.Mutex
		acked = map[string]float64{} // id -> expected result
		other = map[int]int{}        // other answers by status
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	client := &http.Client{Timeout: 15 * time.Second}
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("k-%d-%d", g, i)
				code, _ := submitAsync(client, m.URL, id, fmt.Sprintf("%d * 2 + %d", i, g), nil)
				mu.Lock()
				if code == http.StatusAccepted || code == http.StatusOK {
					acked[id] = float64(i*2 + g)
				} else {
					other[code]++
				}
				mu.Unlock()
				if code == 0 {
					return // the master is gone
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	m.Kill()
	close(stop)
	wg.Wait()
	if len(acked) < 200 {
		t.Fatalf("only %d tasks acknowledged before the kill (other answers %v): load too small to mean anything", len(acked), other)
	}

	m2 := testcluster.Start(t, "master", "master", addr, args...)
	testcluster.WaitSlaves(t, m2.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})
	lost, wrong := 0, 0
	for id, want := range acked {
		code, task := waitTask(t, m2.URL, id)
		switch {
		case code == http.StatusNotFound:
			lost++
		case task.Status != api.StatusCompleted || task.Result == nil || *task.Result != want:
			wrong++
			if wrong <= 5 {
				t.Errorf("task %s after restart: %d %+v, want completed with %v", id, code, task, want)
			}
		}
	}
	resumed := strings.Count(m2.Log(), "resuming task left unfinished")
	t.Logf("%d tasks acknowledged before kill -9 (other answers %v); after restart: %d lost, %d wrong, %d were unfinished and ran again",
		len(acked), other, lost, wrong, resumed)
	if lost > 0 || wrong > 0 {
		t.Fatalf("%d of %d acknowledged tasks lost and %d not completed after kill -9 and restart", lost, len(acked), wrong)
	}
}

// TestKill9WithUnfinishedTasksRunsThemAgainAsSubmitted acknowledges tasks
// that cannot finish (their only slave is frozen with SIGSTOP), kills the
// master with SIGKILL, and restarts it with a new slave: every task runs
// again from its stored request (an operation keeps its operands, the hash
// key and request id come back from disk) and completes.
func TestKill9WithUnfinishedTasksRunsThemAgainAsSubmitted(t *testing.T) {
	data := t.TempDir()
	addr := testcluster.FreeAddr(t)
	args := []string{"--listen", addr, "--data-dir", data, "--policy", "consistent-hash",
		"--health-interval", "10s", "--heartbeat-interval", "200ms", "--task-timeout", "30s", "--log-level", "info"}
	m := testcluster.Start(t, "master", "master", addr, args...)
	frozen := startSlave(t, m.URL, "slave-1")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	if err := frozen.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	type sub struct {
		payload any
		key     string
		want    float64
	}
	subs := map[string]sub{
		"op":   {map[string]any{"operation": "addition", "operands": []float64{1, 2, 3.5, -0.25}}, "key-op", 6.25},
		"div":  {map[string]any{"operation": "division", "operands": []float64{1, 8}}, "key-div", 0.125},
		"expr": {"2 ** 10 - 24", "key-expr", 1000},
	}
	for i := range 5 {
		subs[fmt.Sprintf("e%d", i)] = sub{fmt.Sprintf("%d * 3", i), fmt.Sprintf("user-%d", i), float64(i * 3)}
	}
	for id, s := range subs {
		code, body := submitAsync(http.DefaultClient, m.URL, id, s.payload, map[string]string{api.HeaderHashKey: s.key, api.HeaderRequestID: "rq-" + id})
		if code != http.StatusAccepted {
			t.Fatalf("async submit %s: %d %s; want 202 (acknowledged, durable)", id, code, body)
		}
	}
	m.Kill()
	frozen.Kill()

	m2 := testcluster.Start(t, "master", "master", addr, args...)
	startSlave(t, m2.URL, "slave-2")
	for id, s := range subs {
		code, task := waitTask(t, m2.URL, id)
		if code != http.StatusOK || task.Status != api.StatusCompleted || task.Result == nil || *task.Result != s.want || task.Slave != "slave-2" {
			t.Fatalf("task %s after kill -9 and restart: %d %+v; want completed on slave-2 with %v", id, code, task, s.want)
		}
	}
	log := m2.Log()
	for id, s := range subs {
		line := ""
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, "resuming task") && strings.Contains(l, "task="+id+" ") {
				line = l
			}
		}
		if !strings.Contains(line, "hash_key="+s.key) || !strings.Contains(line, "request_id=rq-"+id) {
			t.Errorf("task %s: resume log line %q; want it run again with its stored hash key %s and request id rq-%s", id, line, s.key, id)
		}
	}
}

// TestFullDiskRefusesTasksHealthSaysWhyAndRecovers runs the master on a
// small tmpfs (root only) that fills up: new tasks get a 503 naming the
// problem, /health says degraded and why, a metric counts the refusals;
// once space returns the master accepts tasks again by itself, and every
// task it acknowledged is kept across a kill -9.
func TestFullDiskRefusesTasksHealthSaysWhyAndRecovers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	data := filepath.Join(mnt, "master")
	addr := testcluster.FreeAddr(t)
	args := []string{"--listen", addr, "--data-dir", data, "--health-interval", "200ms", "--heartbeat-interval", "200ms", "--log-level", "info"}
	m := testcluster.Start(t, "master", "master", addr, args...)
	t.Cleanup(func() {
		m.Kill()
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	startSlave(t, m.URL, "slave-1")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	acked := map[string]bool{}
	submit := func(id string) (int, []byte) {
		code, body := submitAsync(http.DefaultClient, m.URL, id, strings.Repeat("1 + ", 500)+"1", nil)
		if code == http.StatusAccepted || code == http.StatusOK {
			acked[id] = true
		}
		return code, body
	}
	for i := range 20 {
		if code, body := submit(fmt.Sprintf("before-%d", i)); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("submit before the disk is full: %d %s", code, body)
		}
	}

	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()

	var refusal api.Error
	for i := 0; ; i++ {
		code, body := submit(fmt.Sprintf("full-%d", i))
		if code == http.StatusServiceUnavailable {
			if err := json.Unmarshal(body, &refusal); err != nil {
				t.Fatalf("503 body is not JSON: %q", body)
			}
			break
		}
		if code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("submit on a full disk: %d %s; want 202 or 503", code, body)
		}
		if i == 5000 {
			t.Fatal("5000 tasks accepted on a full disk: the master never noticed its writes failing")
		}
	}
	if !strings.Contains(refusal.Error, "task store cannot write") || !strings.Contains(refusal.Error, "no space left") {
		t.Fatalf("503 on a full disk says %+v; want it to name the task store and the disk error", refusal)
	}
	var h api.Health
	if code := doJSON(t, http.MethodGet, m.URL+"/health", nil, &h); code != http.StatusServiceUnavailable || h.Status != api.HealthDegraded || !strings.Contains(h.Detail, "no space left") {
		t.Fatalf("/health on a full disk: %d %+v; want 503 degraded saying why", code, h)
	}
	if n := metric(t, m.URL, `calclab_tasks_rejected_total{reason="store_unavailable"}`); n < 1 {
		t.Fatalf("calclab_tasks_rejected_total{reason=store_unavailable} = %v, want the refusals counted", n)
	}
	if n := metric(t, m.URL, "calclab_taskstore_write_failures_total"); n < 1 {
		t.Fatalf("calclab_taskstore_write_failures_total = %v, want the failed writes counted", n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		code := doJSON(t, http.MethodGet, m.URL+"/health", nil, &h)
		if code == http.StatusOK && h.Status == api.HealthOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("master did not recover 15s after space returned: %d %+v", code, h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for i := range 20 {
		if code, body := submit(fmt.Sprintf("after-%d", i)); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("submit after space returned: %d %s", code, body)
		}
	}
	m.Kill()
	m2 := testcluster.Start(t, "master", "master", addr, args...)
	defer m2.Kill()
	for id := range acked {
		if code, task := waitTask(t, m2.URL, id); code != http.StatusOK || task.Status != api.StatusCompleted || *task.Result != 501 {
			t.Fatalf("acknowledged task %s after recovery and kill -9: %d %+v; want completed with 501", id, code, task)
		}
	}
	t.Logf("%d tasks acknowledged around a full disk, all kept; the refusal said: %s", len(acked), refusal.Error)
}
