package resources_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/resources"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/testcluster"
)

func TestMain(m *testing.M) { testcluster.Main(m, "calclab-resources-") }

func testSpec(t *testing.T, slaves int) *spec.Lab {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: rt\nservices: {policy: round-robin}\nnodes:\n  - {name: master, role: master, ip: 192.168.56.10, local_port: %d}\n", testcluster.FreePort(t))
	for i := 1; i <= slaves; i++ {
		fmt.Fprintf(&b, "  - {name: slave-%d, role: slave, ip: 192.168.56.%d, local_port: %d}\n", i, 10+i, testcluster.FreePort(t))
	}
	s, err := spec.Parse([]byte(b.String()), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pidOf(t *testing.T, stateDir, node string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stateDir, "local-state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	i := strings.Index(string(data), `"`+node+`"`)
	if i < 0 {
		return 0
	}
	fmt.Sscanf(string(data[i:])[strings.Index(string(data[i:]), `"pid": `)+len(`"pid": `):], "%d", &pid)
	return pid
}

func TestLocalCreateUpdateDelete(t *testing.T) {
	ctx := context.Background()
	lab := testSpec(t, 2)
	stateDir := filepath.Join(t.TempDir(), ".lab")
	plan, err := resources.FromSpec(lab, stateDir, testcluster.BinDir())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	log := func(m string) { lines = append(lines, m) }

	net, err := plan.Network.Create(ctx, log)
	if err != nil {
		t.Fatal(err)
	}
	var nodes []resources.NodeState
	var deps []resources.DeploymentState
	t.Cleanup(func() {
		for _, d := range deps {
			d.Delete(ctx, nil)
		}
		for _, n := range nodes {
			n.Delete(ctx, nil)
		}
	})
	for i, na := range plan.Nodes {
		n, err := na.Create(ctx, log)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
		d, err := plan.Deployments[i].Create(ctx, log)
		if err != nil {
			t.Fatalf("deploy %s: %v\n%s", na.Name, err, strings.Join(lines, "\n"))
		}
		deps = append(deps, d)
	}
	master := deps[0]
	if master.URL != "http://"+nodes[0].Address {
		t.Fatalf("master url %q, node address %q", master.URL, nodes[0].Address)
	}
	res, err := http.Post(master.URL+"/submit-task", "application/json", strings.NewReader(`{"payload": "4 * (2 + 3)"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("submit-task: %s", res.Status)
	}

	t.Run("unchanged inputs diff to nothing", func(t *testing.T) {
		again, err := resources.FromSpec(lab, stateDir, testcluster.BinDir())
		if err != nil {
			t.Fatal(err)
		}
		if d := net.Diff(again.Network); d.HasChanges() {
			t.Fatalf("network diff %s", d)
		}
		for i := range nodes {
			if d := nodes[i].Diff(again.Nodes[i]); d.HasChanges() {
				t.Errorf("node %s diff %s", nodes[i].Name, d)
			}
			if d := deps[i].Diff(again.Deployments[i]); d.HasChanges() {
				t.Errorf("deployment %s diff %s", deps[i].Node, d)
			}
		}
	})

	t.Run("diffs name what replaces and what updates in place", func(t *testing.T) {
		tests := []struct {
			name    string
			diff    resources.Diff
			want    string
			replace bool
		}{
			{"node image", nodes[1].Diff(with(nodes[1].NodeArgs, func(a *resources.NodeArgs) { a.Image = "other.qcow2" })), "image (replace)", true},
			{"node memory", nodes[1].Diff(with(nodes[1].NodeArgs, func(a *resources.NodeArgs) { a.MemoryMB = 2048 })), "memoryMb (replace)", true},
			{"deployed binary", deps[1].Diff(withD(deps[1].DeploymentArgs, func(a *resources.DeploymentArgs) { a.BinaryHash = "sha256:00" })), "binaryHash", false},
			{"policy", deps[0].Diff(withD(deps[0].DeploymentArgs, func(a *resources.DeploymentArgs) { a.Policy = "p2c" })), "policy", false},
			{"deployment role", deps[1].Diff(withD(deps[1].DeploymentArgs, func(a *resources.DeploymentArgs) { a.Role = "master" })), "role (replace)", true},
			{"network cidr", net.Diff(func() resources.NetworkArgs { a := net.NetworkArgs; a.CIDR = "10.0.0.0/24"; return a }()), "cidr (replace)", true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if tt.diff.String() != tt.want || tt.diff.Replace() != tt.replace {
					t.Fatalf("diff %q replace=%v, want %q replace=%v", tt.diff, tt.diff.Replace(), tt.want, tt.replace)
				}
			})
		}
	})

	t.Run("update in place restarts the process with the new settings", func(t *testing.T) {
		before := pidOf(t, stateDir, "master")
		a := withD(deps[0].DeploymentArgs, func(a *resources.DeploymentArgs) { a.Policy = "p2c" })
		up, err := deps[0].Update(ctx, a, log)
		if err != nil {
			t.Fatal(err)
		}
		deps[0] = up
		after := pidOf(t, stateDir, "master")
		if after == 0 || after == before {
			t.Fatalf("master pid %d -> %d: not restarted", before, after)
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", after))
		if !strings.Contains(string(cmdline), "p2c") {
			t.Fatalf("restarted master runs %q, want --policy p2c", cmdline)
		}
		// the slaves re-register with the restarted master
		for i := 1; i < len(deps); i++ {
			if _, ok, err := deps[i].Read(ctx); err != nil || !ok {
				t.Fatalf("slave %s after master update: ok=%v err=%v", deps[i].Node, ok, err)
			}
		}
	})

	t.Run("a wrong binary hash is refused", func(t *testing.T) {
		a := withD(deps[1].DeploymentArgs, func(a *resources.DeploymentArgs) { a.BinaryHash = "sha256:00" })
		if _, err := deps[1].Update(ctx, a, log); err == nil || !strings.Contains(err.Error(), "changed since the plan") {
			t.Fatalf("update with a stale hash: %v", err)
		}
	})

	t.Run("read sees a dead process as gone", func(t *testing.T) {
		pid := pidOf(t, stateDir, "slave-2")
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			if _, ok, _ := deps[2].Read(ctx); !ok {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, ok, err := deps[2].Read(ctx); ok || err != nil {
			t.Fatalf("read after kill: ok=%v err=%v", ok, err)
		}
		if _, err := plan.Deployments[2].Create(ctx, log); err != nil {
			t.Fatalf("create again: %v", err)
		}
	})

	t.Run("delete one node leaves the others", func(t *testing.T) {
		if err := deps[2].Delete(ctx, log); err != nil {
			t.Fatal(err)
		}
		if err := nodes[2].Delete(ctx, log); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := nodes[2].Read(ctx); ok {
			t.Fatal("slave-2 node still exists after delete")
		}
		for i := 0; i < 2; i++ {
			if _, ok, err := deps[i].Read(ctx); !ok || err != nil {
				t.Fatalf("%s after deleting slave-2: ok=%v err=%v", deps[i].Node, ok, err)
			}
		}
		// deleting again does nothing
		if err := nodes[2].Delete(ctx, log); err != nil {
			t.Fatal(err)
		}
		deps, nodes = deps[:2], nodes[:2]
	})

	t.Run("delete all and the network leaves nothing", func(t *testing.T) {
		for i := len(deps) - 1; i >= 0; i-- {
			if err := deps[i].Delete(ctx, log); err != nil {
				t.Fatal(err)
			}
			if err := nodes[i].Delete(ctx, log); err != nil {
				t.Fatal(err)
			}
		}
		if err := net.Delete(ctx, log); err != nil {
			t.Fatal(err)
		}
		deps, nodes = nil, nil
		if _, err := os.Stat(stateDir); !os.IsNotExist(err) {
			entries, _ := os.ReadDir(stateDir)
			t.Fatalf("state dir left behind: %v %v", err, entries)
		}
	})
}

func TestCheckRefusesBadInputs(t *testing.T) {
	lab := testSpec(t, 1)
	plan, err := resources.FromSpec(lab, t.TempDir(), testcluster.BinDir())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"relative state dir", with(plan.Nodes[0], func(a *resources.NodeArgs) { a.StateDir = "rel" }).Check(), "must be an absolute path"},
		{"node ip outside the network", with(plan.Nodes[1], func(a *resources.NodeArgs) { a.IP = "10.1.1.1" }).Check(), "not a host address inside"},
		{"unknown provider", with(plan.Nodes[0], func(a *resources.NodeArgs) { a.Provider = "vbox" }).Check(), "not one of"},
		{"slave without master", withD(plan.Deployments[1], func(a *resources.DeploymentArgs) { a.MasterNode = "" }).Check(), "masterNode"},
		{"bad cidr", func() error { a := plan.Network; a.CIDR = "10.0.0.1/24"; return a.Check() }(), "not an IPv4 network"},
		{"hyperv block on another provider", with(plan.Nodes[0], func(a *resources.NodeArgs) { a.HyperV = `{"Host":"win"}` }).Check(), "set for the local provider"},
		{"hyperv block not JSON", with(plan.Nodes[0], func(a *resources.NodeArgs) { a.Provider, a.HyperV = "hyperv", "host=win" }).Check(), "not lab.yaml's hyperv block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", tt.err, tt.want)
			}
		})
	}
}

// TestHyperVThroughTheModel: the resources drive the hyperv provider like
// the others. Without Windows and without a hyperv host in lab.yaml the
// hyperv driver itself answers (PowerShell not found, name a host), so
// both engines reach Hyper-V through the same driver as lab --provider
// hyperv. Never run against real Hyper-V.
func TestHyperVThroughTheModel(t *testing.T) {
	if _, err := exec.LookPath("powershell.exe"); err == nil {
		t.Skip("powershell.exe is on PATH: this test is for machines without Windows PowerShell")
	}
	lab := testSpec(t, 1)
	lab.Provider = "hyperv"
	lab.HyperV = spec.HyperV{Dir: `D:\labs`}
	// VM providers hash bin/linux-amd64/{master,slave}: stand-ins will do.
	bin := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bin, "linux-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"master", "slave"} {
		if err := os.WriteFile(filepath.Join(bin, "linux-amd64", role), []byte(role), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := resources.FromSpec(lab, t.TempDir(), bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{plan.Network.HyperV, plan.Nodes[1].HyperV, plan.Deployments[1].HyperV} {
		if !strings.Contains(h, `"Dir":"D:\\labs"`) {
			t.Fatalf("the hyperv block does not reach the resources: %q", h)
		}
	}
	_, err = plan.Nodes[1].Create(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "powershell.exe not found") || !strings.Contains(err.Error(), "hyperv: {host:") {
		t.Fatalf("creating a hyperv node without Windows: %v", err)
	}
	// The other providers' inputs do not carry it.
	lab.Provider = "qemu"
	if plan, err = resources.FromSpec(lab, t.TempDir(), bin); err != nil || plan.Nodes[0].HyperV != "" {
		t.Fatalf("qemu plan: %v, hyperv %q", err, plan.Nodes[0].HyperV)
	}
}

func with(a resources.NodeArgs, f func(*resources.NodeArgs)) resources.NodeArgs { f(&a); return a }
func withD(a resources.DeploymentArgs, f func(*resources.DeploymentArgs)) resources.DeploymentArgs {
	f(&a)
	return a
}
