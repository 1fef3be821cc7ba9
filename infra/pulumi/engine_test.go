package pulumi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/testcluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testcluster.RemoveBinaries()
	os.Exit(code)
}

// binaries builds master, slave and our provider plugin once per test run.
func binaries(t *testing.T) string {
	return testcluster.Binaries(t, "github.com/calclab/calclab/cmd/pulumi-resource-calclab")
}

// testToken is the lab's registration token: a secret in the stack.
const testToken = "pulumi-cycle-token-5a3e"

// localLab is a lab.yaml for the local provider on free ports, with
// slaves slave-1..slave-n.
func localLab(t *testing.T, dir string, ports []int, slaves int) *spec.Lab {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: pulab\nprovider: local\nservices:\n  master_port: %d\n  slave_port: %d\n  token: %s\nnodes:\n", ports[0], ports[1], testToken)
	fmt.Fprintf(&b, "  - {name: master, role: master, ip: 192.168.56.10, local_port: %d}\n", ports[0])
	for i := 1; i <= slaves; i++ {
		fmt.Fprintf(&b, "  - {name: slave-%d, role: slave, ip: 192.168.56.%d, local_port: %d}\n", i, 10+i, ports[i])
	}
	file := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := spec.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// syncWriter lets the test read what the engine's goroutines write.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func (w *syncWriter) Reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
}

// TestEngineLocalCycle drives the real pulumi CLI and our real provider
// plugin over the local driver: up, a task answered, preview says no
// changes, up again changes nothing, one more slave is a one-node plan,
// down leaves no process, no stack and no state.
func TestEngineLocalCycle(t *testing.T) {
	cli, err := FindPulumi(context.Background())
	if err != nil {
		t.Skipf("%v", err)
	}
	bin := binaries(t)
	dir := t.TempDir()
	ports := testcluster.FreePorts(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out := &syncWriter{}
	step := func(name string) {
		if testing.Verbose() {
			t.Logf("%s:\n%s", name, out.String())
		}
		out.Reset()
	}
	eng := &Engine{Spec: localLab(t, dir, ports, 2), StateDir: filepath.Join(dir, ".lab"), BinDir: bin, Pulumi: cli, Out: out}
	t.Cleanup(func() {
		if eng.hasState() {
			_ = eng.Down(context.Background())
		}
	})

	start := time.Now()
	o, err := eng.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	t.Logf("up in %s", time.Since(start).Round(time.Millisecond))
	if want := fmt.Sprintf("http://127.0.0.1:%d", ports[0]); o.MasterURL != want {
		t.Errorf("master_url %q, want %q", o.MasterURL, want)
	}
	if len(o.Nodes) != 3 || o.Nodes["slave-2"].Role != "slave" || o.Nodes["slave-2"].URL == "" || o.Nodes["master"].Address == "" {
		t.Errorf("outputs: %+v", o.Nodes)
	}
	if !strings.Contains(out.String(), "calclab:index:Deployment slave-1 created") && !strings.Contains(out.String(), "calclab:index:Deployment slave-1 creating") {
		t.Errorf("no per-resource progress from pulumi:\n%s", out.String())
	}
	if fi, err := os.Stat(filepath.Join(eng.Dir(), "passphrase")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("passphrase file: %v %v", fi, err)
	}

	// A task answered by the lab.
	if got := answer(t, o.MasterURL); got != 20 {
		t.Errorf("4 * (2 + 3) = %v", got)
	}
	// The token is a secret: encrypted in the state.
	filepath.WalkDir(filepath.Join(eng.Dir(), ".pulumi"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(testToken)) {
				t.Errorf("%s holds the token in plain text", path)
			}
		}
		return nil
	})

	// Outputs read back from the stack.
	if o2, err := eng.Outputs(ctx); err != nil || o2.MasterURL != o.MasterURL || len(o2.Nodes) != 3 {
		t.Errorf("outputs: %+v %v", o2, err)
	}

	step("up")
	changes, err := eng.Changes(ctx)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out.String())
	}
	if len(changes) != 0 || !strings.Contains(lastLine(out.String()), "no changes") {
		t.Errorf("plan on a converged lab: %v; last line %q\n%s", changes, lastLine(out.String()), out.String())
	}

	step("plan")
	if _, err := eng.Up(ctx); err != nil {
		t.Fatalf("up again: %v\n%s", err, out.String())
	}
	if s := out.String(); strings.Contains(s, " created") || strings.Contains(s, " updated") || strings.Contains(s, " replaced") || strings.Contains(s, " deleted") {
		t.Errorf("up again changed something:\n%s", s)
	}

	// A crash in the middle of up: slave-2's deployment was being created
	// (its process runs, the state has only a pending operation) and the
	// dead process's lock is still on the stack. The next up recovers.
	simulateCrash(t, eng, "slave-2")
	step("up again")
	if _, err := eng.Up(ctx); err != nil {
		t.Fatalf("up after a crash: %v\n%s", err, out.String())
	}
	for _, want := range []string{"removing the stack lock", "dropping that pending operation", "calclab:index:Deployment slave-2 created"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("up after a crash: no %q in\n%s", want, out.String())
		}
	}
	if answer(t, o.MasterURL) != 20 {
		t.Errorf("no answer after the recovery")
	}
	step("up after a crash")

	// A rebuilt slave binary: the slaves' deployments update in place.
	// (a new file renamed over the old one, as go build does: the running
	// slaves keep theirs)
	data, err := os.ReadFile(filepath.Join(bin, "slave"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "slave.new"), append(data, "rebuilt"...), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(bin, "slave.new"), filepath.Join(bin, "slave")); err != nil {
		t.Fatal(err)
	}
	changes, err = eng.Changes(ctx)
	if err != nil {
		t.Fatalf("plan with a new slave binary: %v\n%s", err, out.String())
	}
	if got := summary(changes); fmt.Sprint(got) != fmt.Sprint([]string{"update calclab:index:Deployment slave-1", "update calclab:index:Deployment slave-2"}) {
		t.Errorf("plan with a new slave binary: %v\n%s", got, out.String())
	}
	step("plan with a new slave binary")
	if _, err := eng.Up(ctx); err != nil {
		t.Fatalf("up with a new slave binary: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "calclab:index:Deployment slave-1 updated") || strings.Contains(out.String(), "replaced") {
		t.Errorf("up with a new slave binary:\n%s", out.String())
	}
	if answer(t, o.MasterURL) != 20 {
		t.Errorf("no answer after the update")
	}
	step("up with a new slave binary")

	// One more slave in lab.yaml: a plan of exactly its node and deployment.
	more := append(ports, testcluster.FreePorts(t, 1)...)
	eng.Spec = localLab(t, dir, more, 3)
	changes, err = eng.Changes(ctx)
	if err != nil {
		t.Fatalf("plan with a third slave: %v\n%s", err, out.String())
	}
	got := summary(changes)
	want := []string{"create calclab:index:Deployment slave-3", "create calclab:index:Node slave-3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plan with a third slave: %v, want %v\n%s", got, want, out.String())
	}

	eng.Spec = localLab(t, dir, ports, 2)
	step("plan with a third slave")
	if err := eng.Down(ctx); err != nil {
		t.Fatalf("down: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(eng.Dir()); !os.IsNotExist(err) {
		t.Errorf("down left %s behind", eng.Dir())
	}
	for _, p := range ports[:3] {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("port %d still answers after down", p)
		}
	}
	step("down")
	t.Logf("whole cycle in %s", time.Since(start).Round(time.Millisecond))
}

// answer submits 4 * (2 + 3) to the master and returns the result.
func answer(t *testing.T, masterURL string) float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, masterURL+"/submit-task", strings.NewReader(`{"payload": "4 * (2 + 3)"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("the master does not answer: %v", err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var task struct {
		Status string  `json:"status"`
		Result float64 `json:"result"`
	}
	if err := json.Unmarshal(body, &task); err != nil || task.Status != "completed" {
		t.Errorf("task: %s %s (%v)", res.Status, body, err)
	}
	return task.Result
}

// simulateCrash leaves the stack as a pulumi up killed while creating
// node's deployment would: the deployment only in the pending operations
// of the state file (stack import would drop them, so the file is edited
// in place), and a lock held by a process that is gone.
func simulateCrash(t *testing.T, eng *Engine, node string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(eng.Dir(), ".pulumi", "stacks", "*", eng.Spec.Name+".json"))
	if len(files) != 1 {
		t.Fatalf("the stack's state file: %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var cp struct {
		Version    int                        `json:"version"`
		Checkpoint map[string]json.RawMessage `json:"checkpoint"`
	}
	var d map[string]json.RawMessage
	var res []map[string]any
	if err := json.Unmarshal(data, &cp); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cp.Checkpoint["latest"], &d); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(d["resources"], &res); err != nil {
		t.Fatal(err)
	}
	var keep, pending []map[string]any
	for _, r := range res {
		if urn, _ := r["urn"].(string); strings.HasSuffix(urn, "calclab:index:Deployment::"+node) {
			pending = append(pending, map[string]any{"resource": r, "type": "creating"})
			continue
		}
		keep = append(keep, r)
	}
	if len(pending) != 1 {
		t.Fatalf("no deployment %s in the state", node)
	}
	d["resources"], _ = json.Marshal(keep)
	d["pending_operations"], _ = json.Marshal(pending)
	cp.Checkpoint["latest"], _ = json.Marshal(d)
	if data, err = json.Marshal(cp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(files[0], data, 0o644); err != nil {
		t.Fatal(err)
	}

	dead := exec.Command("go", "version")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	lockDir := filepath.Join(eng.Dir(), ".pulumi", "locks", "organization", Project, eng.Spec.Name)
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock := fmt.Sprintf(`{"pid": %d, "username": "x", "hostname": %q, "timestamp": "2026-01-01T00:00:00Z"}`, dead.Process.Pid, host)
	if err := os.WriteFile(filepath.Join(lockDir, "7d2a0c5e-crashed.json"), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
}

// summary lists changes as "op type name", sorted.
func summary(changes []Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.Op+" "+c.Resource)
	}
	sort.Strings(out)
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
