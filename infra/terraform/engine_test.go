package terraform

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
	return testcluster.Binaries(t, "github.com/calclab/calclab/cmd/terraform-provider-calclab")
}

// localLab is a lab.yaml for the local provider on free ports, with
// slaves slave-1..slave-n.
func localLab(t *testing.T, dir string, ports []int, slaves int) *spec.Lab {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "name: tflab\nprovider: local\nservices:\n  master_port: %d\n  slave_port: %d\nnodes:\n", ports[0], ports[1])
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

// TestEngineLocalCycle drives the real terraform CLI and our real provider
// over the local driver: up, plan says no changes, up again changes
// nothing, one more slave is a one-node plan, down leaves nothing.
func TestEngineLocalCycle(t *testing.T) {
	tfBin, err := FindTerraform(context.Background())
	if err != nil {
		t.Skipf("%v", err)
	}
	bin := binaries(t)
	dir := t.TempDir()
	ports := testcluster.FreePorts(t, 4)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	eng := &Engine{Spec: localLab(t, dir, ports, 2), StateDir: filepath.Join(dir, ".lab"), BinDir: bin, Terraform: tfBin, Out: &out}
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(eng.Dir(), "terraform.tfstate")); err == nil {
			_ = eng.Down(context.Background())
		}
	})

	o, err := eng.Up(ctx)
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d", ports[0]); o.MasterURL != want {
		t.Errorf("master_url %q, want %q", o.MasterURL, want)
	}
	if len(o.Nodes) != 3 || o.Nodes["slave-2"].Role != "slave" || o.Nodes["slave-2"].URL == "" {
		t.Errorf("outputs: %+v", o.Nodes)
	}
	if !strings.Contains(out.String(), "calclab_deployment.slave[\"slave-1\"]: Creation complete") {
		t.Errorf("no per-resource progress from terraform:\n%s", out.String())
	}
	res, err := http.Get(o.MasterURL + "/slaves")
	if err != nil {
		t.Fatalf("the master does not answer: %v", err)
	}
	res.Body.Close()

	out.Reset()
	changes, err := eng.Changes(ctx)
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, out.String())
	}
	if len(changes) != 0 || !strings.Contains(lastLine(out.String()), "no changes") {
		t.Errorf("plan on a converged lab: %v; last line %q", changes, lastLine(out.String()))
	}

	out.Reset()
	if _, err := eng.Up(ctx); err != nil {
		t.Fatalf("up again: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "0 added, 0 changed, 0 destroyed") {
		t.Errorf("up again changed something:\n%s", out.String())
	}

	// One more slave in lab.yaml: a plan of exactly its node and deployment.
	more := append(ports, testcluster.FreePorts(t, 1)...)
	eng.Spec = localLab(t, dir, more, 3)
	out.Reset()
	changes, err = eng.Changes(ctx)
	if err != nil {
		t.Fatalf("plan with a third slave: %v\n%s", err, out.String())
	}
	got := map[string]string{}
	for _, c := range changes {
		got[c.Address] = c.Actions
	}
	want := map[string]string{`calclab_node.node["slave-3"]`: "create", `calclab_deployment.slave["slave-3"]`: "create"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plan with a third slave: %v, want %v", got, want)
	}

	eng.Spec = localLab(t, dir, ports, 2)
	out.Reset()
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
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
