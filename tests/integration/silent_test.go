package integration

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
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

// newHost makes the namespace and its link, or skips the test where that
// cannot be done (not root, no ip, no veth).
func newHost(t *testing.T) *host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("a network namespace needs root")
	}
	pid := os.Getpid()
	h := &host{ns: fmt.Sprintf("calclab-it-%d", pid), link: fmt.Sprintf("clit%db", pid)}
	outer := fmt.Sprintf("clit%da", pid)
	// A /30 of 10.213.0.0/16 picked by the pid, so parallel runs differ.
	a, b := (pid>>6)&0xff, (pid&0x3f)<<2
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

// TestSlaveHostGoesSilentMidRender: slave-2 runs in a network namespace
// whose network dies while a frame renders (a killed VM: its connections
// are neither answered nor reset). The tiles it had in flight run again
// on slave-1 within seconds, long before the tile timeout (60s), and the
// picture is complete and right. The master's connections to slaves send
// TCP keepalive probes, so the kernel finds the dead peer while the
// master waits for a tile's answer.
func TestSlaveHostGoesSilentMidRender(t *testing.T) {
	h := newHost(t)
	addr := net.JoinHostPort(h.local, strconv.Itoa(testcluster.FreePort(t)))
	m := testcluster.Start(t, "master", "master", addr, "--listen", addr, "--data-dir", t.TempDir(),
		"--health-interval", "200ms", "--heartbeat-interval", "200ms", "--log-level", "info",
		"--allow-cidr", "127.0.0.0/8,"+h.cidr)
	startSlave(t, m.URL, "slave-1")
	s2addr := net.JoinHostPort(h.remote, "6002")
	testcluster.StartIn(t, h.ns, "slave-2", "slave", s2addr, "--listen", s2addr, "--master", m.URL, "--id", "slave-2", "--capacity", "2")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})

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
