package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/driver/local"
	"github.com/calclab/calclab/infra/lab"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m, "calclab-lab-") }

func testLab(t *testing.T) (*lab.Lab, *bytes.Buffer, string) {
	t.Helper()
	yaml := fmt.Sprintf(`name: t
nodes:
  - {name: master, role: master, ip: 192.168.56.10, local_port: %d}
  - {name: slave-1, role: slave, ip: 192.168.56.11, local_port: %d}
  - {name: slave-2, role: slave, ip: 192.168.56.12, local_port: %d}
`, testcluster.FreePort(t), testcluster.FreePort(t), testcluster.FreePort(t))
	s, err := spec.Parse([]byte(yaml), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), ".lab")
	out := new(bytes.Buffer)
	l := &lab.Lab{Spec: s, Driver: &local.Driver{Dir: state, BinDir: testcluster.BinDir(), StopTimeout: 10 * time.Second}, Out: out, ReadyTimeout: 30 * time.Second}
	t.Cleanup(func() { l.Down(context.Background()) })
	return l, out, state
}

func TestLocalLabUpStatusLogsDown(t *testing.T) {
	l, out, state := testLab(t)
	ctx := context.Background()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	for _, want := range []string{"2 of 2 slaves registered", "NODE", "slave-2", "curl -s -X POST"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("up output lacks %q:\n%s", want, out)
		}
	}
	first, err := l.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range first {
		if n.Health != "ok" || n.PID == 0 {
			t.Fatalf("after up: %+v", n)
		}
	}

	// Up again converges: nothing restarted.
	out.Reset()
	if err := l.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "already running") {
		t.Fatalf("second up did not notice the running nodes:\n%s", out)
	}
	again, _ := l.Nodes(ctx)
	for i := range again {
		if again[i].PID != first[i].PID {
			t.Fatalf("second up restarted %s (pid %d -> %d)", again[i].Node, first[i].PID, again[i].PID)
		}
	}

	out.Reset()
	if bad, err := l.Status(ctx, true); err != nil || len(bad) > 0 {
		t.Fatal(err, bad)
	}
	var rows []lab.NodeStatus
	if err := json.Unmarshal(out.Bytes(), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("status --json: %v %s", err, out)
	}

	var logs bytes.Buffer
	if err := l.Driver.Logs(ctx, l.Spec, "slave-1", false, &logs); err != nil || !strings.Contains(logs.String(), "registered with the master") {
		t.Fatalf("logs slave-1: %v\n%s", err, logs.String())
	}
	if err := l.Driver.Logs(ctx, l.Spec, "slave-9", false, &logs); err == nil || !strings.Contains(err.Error(), "no node") {
		t.Fatalf("logs of an unknown node: %v", err)
	}

	// A node killed behind the lab's back is restarted by the next up.
	p, _ := os.FindProcess(first[2].PID)
	p.Kill()
	time.Sleep(200 * time.Millisecond)
	out.Reset()
	if err := l.Up(ctx); err != nil {
		t.Fatalf("up after a slave died: %v\n%s", err, out)
	}

	if err := l.Down(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range first {
		if err := exec.Command("kill", "-0", fmt.Sprint(n.PID)).Run(); err == nil {
			t.Fatalf("%s (pid %d) still running after down", n.Node, n.PID)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(state)
		t.Fatalf("down left %s behind: %v", state, entries)
	}
	if err := l.Down(ctx); err != nil {
		t.Fatalf("second down: %v", err)
	}
}

func TestUpFailsClearlyWhenAPortIsTaken(t *testing.T) {
	l, out, _ := testLab(t)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", l.Spec.Slaves()[0].LocalPort))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = l.Up(context.Background())
	if err == nil || !strings.Contains(err.Error(), "slave-1") || !strings.Contains(err.Error(), "taken") {
		t.Fatalf("up with slave-1's port taken: %v\n%s", err, out)
	}
}
