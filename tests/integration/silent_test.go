package integration

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
)

// host is a network namespace of the test's own, joined to this one by a
// veth pair on a /30: a host that can go silent, as a killed VM does
// (nothing comes back from it: no answer, no reset, no ICMP).
type host struct {
	ns, link      string // the namespace; the pair's end inside it
	local, remote string // addresses: this side, the namespace's side
	cidr          string
}

// ip runs ip with args and fails the test on an error.
func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// hosts numbers the hosts a test binary makes.
var hosts atomic.Int32

// newHost makes the namespace and its link, or skips the test where that
// cannot be done (not root, no ip, no veth).
func newHost(t *testing.T) *host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	pid, seq := os.Getpid(), int(hosts.Add(1))
	h := &host{ns: fmt.Sprintf("calclab-it-%d-%d", pid, seq), link: fmt.Sprintf("clit%d%db", pid, seq%10)}
	outer := fmt.Sprintf("clit%d%da", pid, seq%10)
	// A /30 of 10.213.0.0/16 picked by the pid and the host's number, so
	// hosts of parallel runs and tests differ.
	idx := (pid*4 + seq) & 0x3fff
	a, b := idx>>6, (idx&0x3f)<<2
	h.local, h.remote = fmt.Sprintf("10.213.%d.%d", a, b+1), fmt.Sprintf("10.213.%d.%d", a, b+2)
	h.cidr = fmt.Sprintf("10.213.%d.%d/30", a, b)
	if out, err := exec.Command("ip", "netns", "add", h.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot make a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", outer).Run()
		_ = exec.Command("ip", "netns", "del", h.ns).Run()
	})
	if out, err := exec.Command("ip", "link", "add", outer, "type", "veth", "peer", "name", h.link, "netns", h.ns).CombinedOutput(); err != nil {
		t.Skipf("cannot make a veth pair: %v: %s", err, out)
	}
	ip(t, "addr", "add", h.local+"/30", "dev", outer)
	ip(t, "link", "set", outer, "up")
	ip(t, "-n", h.ns, "addr", "add", h.remote+"/30", "dev", h.link)
	ip(t, "-n", h.ns, "link", "set", h.link, "up")
	ip(t, "-n", h.ns, "link", "set", "lo", "up")
	return h
}

// die silences the host: a blackhole route in the namespace drops
// everything it would send this side (answers, acknowledgements, resets),
// on connections open or new, while what this side sends still leaves
// (as to a killed VM, whose switch port still takes frames). Taking the
// link down instead makes the kernel here fail to send, which TCP counts
// as local congestion and retries without end.
func (h *host) die(t *testing.T) { ip(t, "-n", h.ns, "route", "add", "blackhole", h.local+"/32") }

// startSilentCluster starts a master on this side of a new host, slave-1
// on loopback and slave-2 in the host, and waits until both are free.
func startSilentCluster(t *testing.T) (h *host, m, s2 *testcluster.Proc) {
	t.Helper()
	h = newHost(t)
	addr := net.JoinHostPort(h.local, strconv.Itoa(testcluster.FreePort(t)))
	m = testcluster.Start(t, "master", "master", addr, "--listen", addr, "--data-dir", t.TempDir(),
		"--health-interval", "200ms", "--heartbeat-interval", "200ms", "--log-level", "info",
		"--allow-cidr", "127.0.0.0/8,"+h.cidr)
	startSlave(t, m.URL, "slave-1")
	s2 = startSlave2(t, h, m)
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})
	return h, m, s2
}

// startSlave2 starts slave-2 in h, on port 6002 of its address.
func startSlave2(t *testing.T, h *host, m *testcluster.Proc) *testcluster.Proc {
	t.Helper()
	addr := net.JoinHostPort(h.remote, "6002")
	return testcluster.StartIn(t, h.ns, "slave-2", "slave", addr, "--listen", addr, "--master", m.URL, "--id", "slave-2", "--capacity", "2")
}

// TestSlaveHostGoesSilentMidRender: slave-2 runs in a network namespace
// whose network dies while a frame renders (a killed VM: its connections
// are neither answered nor reset). The tiles it had in flight run again
// on slave-1 within seconds, long before the tile timeout (60s), and the
// picture is complete and right. The master's connections to slaves send
// TCP keepalive probes, so the kernel finds the dead peer while the
// master waits for a tile's answer.
func TestSlaveHostGoesSilentMidRender(t *testing.T) {
	h, m, _ := startSilentCluster(t)

	var died time.Time
	var lastTile time.Duration
	r := renderHeavy(t, m.URL, func(onSlave2 int) {
		if !died.IsZero() {
			lastTile = time.Since(died)
		}
		if onSlave2 >= 3 && died.IsZero() {
			h.die(t)
			died = time.Now()
		}
	})
	if died.IsZero() || !r.done {
		t.Fatalf("died=%v done=%v after %d tiles", !died.IsZero(), r.done, r.tiles)
	}
	took := time.Since(died)
	t.Logf("%d tiles, %d from slave-2, %d ran again elsewhere; the render ended %s after slave-2's host went silent (last tile at %s)",
		r.tiles, r.onSlave2, r.retried, took.Round(time.Millisecond), lastTile.Round(time.Millisecond))
	for _, l := range strings.Split(m.Log(), "\n") {
		if strings.Contains(l, "retrying elsewhere") {
			t.Logf("master: %s", l)
		}
	}
	if r.retried == 0 {
		t.Errorf("no tile ran again: slave-2 had none in flight when its host went silent")
	}
	if took > 30*time.Second {
		t.Errorf("the render ended %s after slave-2's host went silent: its tiles waited for the tile timeout", took.Round(time.Millisecond))
	}
	checkHeavy(t, r.img, "after slave-2's host went silent")
}

// back lifts die: the host answers again.
func (h *host) back(t *testing.T) { ip(t, "-n", h.ns, "route", "del", "blackhole", h.local+"/32") }

// TestSlaveHostGoesSilentUnderLoadAndComesBack: slave-2's host goes silent
// under task load and its process is killed meanwhile (what it sends while
// dying is dropped: a killed VM), then the host answers again and a new
// slave-2 starts at the same address (the VM booted again). Every task
// submitted completes once with its right result, and once slave-2 is
// back its tasks go on a new connection at once: none waits for an answer
// on the old, dead one. A CI run on QEMU VMs saw all 40 tasks after the
// restart run on slave-1.
func TestSlaveHostGoesSilentUnderLoadAndComesBack(t *testing.T) {
	h, m, s2 := startSilentCluster(t)

	// run submits n tasks from 8 clients (during calls after the i-th
	// finished) and returns them with the slowest one's time.
	run := func(prefix string, n int, during func(i int)) ([]api.Task, time.Duration) {
		tasks := make([]api.Task, n)
		var (
			mu      sync.Mutex
			done    int
			slowest time.Duration
			wg      sync.WaitGroup
		)
		next := make(chan int)
		for range 8 {
			wg.Go(func() {
				for i := range next {
					start := time.Now()
					code := doJSON(t, http.MethodPost, m.URL+"/submit-task", map[string]any{
						"task_id": fmt.Sprintf("%s-%d", prefix, i), "payload": fmt.Sprintf("%d * 3 + 1", i),
					}, &tasks[i])
					took := time.Since(start)
					if want := float64(i*3 + 1); code != http.StatusOK || tasks[i].Result == nil || *tasks[i].Result != want {
						t.Errorf("task %s-%d: %d %+v, want 200 with %v", prefix, i, code, tasks[i], want)
					}
					mu.Lock()
					done++
					slowest = max(slowest, took)
					if during != nil {
						during(done)
					}
					mu.Unlock()
				}
			})
		}
		for i := range n {
			next <- i
		}
		close(next)
		wg.Wait()
		return tasks, slowest
	}
	bySlave := func(tasks []api.Task) map[string]int {
		out := map[string]int{}
		for _, tk := range tasks {
			out[tk.Slave]++
		}
		return out
	}

	var died time.Time
	load, slowest := run("load", 600, func(done int) {
		if done == 150 {
			h.die(t)
			s2.Kill()
			died = time.Now()
		}
	})
	t.Logf("under load: tasks by slave %v, the slowest %s", bySlave(load), slowest.Round(time.Millisecond))
	if died.IsZero() || bySlave(load)["slave-2"] == 0 {
		t.Fatalf("the load did not reach slave-2 before its host went silent: %v", bySlave(load))
	}

	h.back(t)
	startSlave2(t, h, m)
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})
	after, slowest := run("after", 40, nil)
	counts := bySlave(after)
	t.Logf("after slave-2 came back (%s after its host went silent): tasks by slave %v, the slowest %s",
		time.Since(died).Round(time.Millisecond), counts, slowest.Round(time.Millisecond))
	if counts["slave-2"] == 0 {
		t.Errorf("slave-2 took no task after it came back: %v", counts)
	}
	if slowest > 2*time.Second {
		t.Errorf("a task after slave-2 came back took %s: it waited on a dead connection", slowest.Round(time.Millisecond))
	}
}
