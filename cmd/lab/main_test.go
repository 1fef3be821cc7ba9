package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv/ps/pstest"
	"github.com/calclab/calclab/infra/terraform"
)

// TestPlanHyperV: `lab plan --provider hyperv --out DIR` on the
// repository's lab.yaml writes one script per step, network.ps1 and each
// node's seed and network-config, all without a Windows host, and every
// script parses as PowerShell.
func TestPlanHyperV(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	labFile := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(labFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "plan")
	var stdout bytes.Buffer
	state := filepath.Join(dir, ".lab")
	if err := run([]string{"--file", labFile, "--state-dir", state, "--provider", "hyperv", "plan", "--out", out}, &stdout); err != nil {
		t.Fatal(err)
	}
	scripts, _ := filepath.Glob(filepath.Join(out, "*.ps1"))
	// preflight, switch, address, NAT, image, 3 VMs, 3 starts, network.ps1
	if len(scripts) != 12 {
		t.Fatalf("%d scripts: %v\n%s", len(scripts), scripts, stdout.String())
	}
	for _, node := range []string{"master", "slave-1", "slave-2"} {
		for _, f := range []string{"seed.iso", "network-config"} {
			if _, err := os.Stat(filepath.Join(out, node, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	vm, err := os.ReadFile(filepath.Join(out, "06-vm-master.ps1"))
	if err != nil || !strings.Contains(string(vm), "-SecureBootTemplate MicrosoftUEFICertificateAuthority") || !strings.Contains(string(vm), "New-VM -Name $VMName -Generation 2") {
		t.Fatalf("06-vm-master.ps1: %v", err)
	}
	pstest.ParseFiles(t, scripts)

	// Without --out the plan is printed, and nothing was run or made on a host.
	stdout.Reset()
	if err := run([]string{"--file", labFile, "--state-dir", state, "--provider", "hyperv", "plan"}, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "# ---- 04-nat.ps1 ----") || !strings.Contains(stdout.String(), "New-NetNat -Name $NatName") {
		t.Fatalf("printed plan:\n%.2000s", stdout.String())
	}
	if _, err := os.Stat(filepath.Join(state, "hyperv-state.json")); !os.IsNotExist(err) {
		t.Fatalf("plan recorded state: %v", err)
	}
	// status and down of a lab never brought up speak to no host.
	stdout.Reset()
	if err := run([]string{"--file", labFile, "--state-dir", state, "--provider", "hyperv", "status"}, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "stopped") || !strings.Contains(stdout.String(), "192.168.56.10:5000") {
		t.Fatalf("status:\n%s", stdout.String())
	}
	if err := run([]string{"--file", labFile, "--state-dir", state, "--provider", "hyperv", "down"}, &stdout); err != nil {
		t.Fatal(err)
	}
	// Looking at a lab and taking it down leave no file behind (a token
	// made by down kept the state dir alive, and e2e-vm failed on it).
	if entries, err := os.ReadDir(state); !os.IsNotExist(err) {
		t.Fatalf("status and down left %s: %v %v", state, entries, err)
	}
	// up on a machine without Windows PowerShell and no hyperv.host says what to do.
	if _, err := exec.LookPath("powershell.exe"); err != nil {
		err := run([]string{"--file", labFile, "--state-dir", state, "--provider", "hyperv", "up"}, &stdout)
		if err == nil || !strings.Contains(err.Error(), "powershell.exe not found") || !strings.Contains(err.Error(), "hyperv: {host:") {
			t.Fatalf("up without PowerShell: %v", err)
		}
	}
	err = run([]string{"--file", labFile, "--state-dir", state, "--provider", "qemu", "plan"}, &stdout)
	if !errors.Is(err, driver.ErrUnsupported) {
		t.Fatalf("plan with qemu: %v", err)
	}
}

// TestArguments: global flags work before or after the command, and
// arguments the command does not take are errors that say what was wrong
// (they were ignored or blamed on lab.yaml before).
func TestArguments(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "lab.yaml")
	data, err := os.ReadFile(filepath.Join("..", "..", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\nnodes:\n  - {name: m, role: boss}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, ".lab")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // "" for success
		wantOut string
	}{
		{"file after the command", []string{"validate", "--file", bad}, "bad.yaml:3", ""},
		{"file before the command", []string{"--file", bad, "validate"}, "bad.yaml:3", ""},
		{"file= after the command", []string{"validate", "--file=" + good}, "", "ok: lab calclab"},
		{"a spec as an argument", []string{"--file", good, "validate", "bad.yaml"}, "a lab spec is given with --file bad.yaml", ""},
		{"unknown provider", []string{"--file", good, "up", "--provider", "nonsense"}, `--provider "nonsense": use one of local, qemu, hyperv`, ""},
		{"unknown engine", []string{"--file", good, "status", "--engine", "chef"}, `--engine "chef": use one of native`, ""},
		{"unknown command", []string{"--file", good, "launch"}, `unknown command "launch"`, ""},
		{"unknown status flag", []string{"--file", good, "--state-dir", state, "status", "--yaml"}, "status: flag provided but not defined: -yaml", ""},
		{"status without a value", []string{"--file", good, "status", "--file"}, "flag needs an argument", ""},
		{"version flag", []string{"--version"}, "", "lab "},
		{"version command", []string{"version"}, "", "lab "},
		{"help for a command", []string{"help", "logs"}, "", "Usage: lab [flags] logs NODE"},
		{"help for nonsense", []string{"help", "launch"}, `unknown command "launch"`, ""},
		{"no command", []string{"--file", good}, "missing command", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tc.args, &out)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("lab %v: %v\n%s", tc.args, err, out.String())
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("lab %v: error %v, want one with %q\n%s", tc.args, err, tc.wantErr, out.String())
			case !strings.Contains(out.String(), tc.wantOut):
				t.Fatalf("lab %v printed %q, want %q", tc.args, out.String(), tc.wantOut)
			}
		})
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatalf("looking at a lab made %s: %v", state, err)
	}
}

// TestEnginesDoNotMix: a state dir brought up by one engine refuses
// another until it is down.
func TestEnginesDoNotMix(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, ".lab")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "engine"), []byte("terraform\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run([]string{"--file", file, "--state-dir", state, "--engine", "native", "up"}, &out)
	if err == nil || !strings.Contains(err.Error(), "managed by the terraform engine: mixing engines on one state dir is refused") {
		t.Fatalf("native up over a terraform lab: %v", err)
	}
	if err := os.WriteFile(filepath.Join(state, "provider"), []byte("qemu\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = run([]string{"--file", file, "--state-dir", state, "--provider", "local", "status"}, &out)
	if err == nil || !strings.Contains(err.Error(), "runs on the qemu provider") {
		t.Fatalf("status --provider local of a qemu lab: %v", err)
	}
}

// TestTerraformEngineThroughLab runs the terraform engine the way a user
// does: lab up --engine terraform, status (read from the outputs, each
// node healthy), plan says no changes, and lab down leaves no process and
// no state dir. Real terraform CLI, real provider plugin, local provider.
func TestTerraformEngineThroughLab(t *testing.T) {
	if _, err := terraform.FindTerraform(context.Background()); err != nil {
		t.Skipf("%v (make tools builds it)", err)
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "../master", "../slave", "../terraform-provider-calclab")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	ports := freePorts(t, 3)
	lab := fmt.Sprintf("name: tfcli\nprovider: local\nservices: {master_port: %d, slave_port: %d}\nnodes:\n"+
		"  - {name: master, role: master, ip: 192.168.56.10, local_port: %d}\n"+
		"  - {name: slave-1, role: slave, ip: 192.168.56.11, local_port: %d}\n"+
		"  - {name: slave-2, role: slave, ip: 192.168.56.12, local_port: %d}\n", ports[0], ports[1], ports[0], ports[1], ports[2])
	file := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(file, []byte(lab), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, ".lab")
	labCmd := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(append([]string{"--file", file, "--state-dir", state, "--bin-dir", bin}, args...), &out)
		return out.String(), err
	}
	t.Cleanup(func() { _, _ = labCmd("down") })

	if out, err := labCmd("up", "--engine", "terraform"); err != nil {
		t.Fatalf("lab up --engine terraform: %v\n%s", err, out)
	}
	// The engine is remembered: no --engine from here on.
	out, err := labCmd("status")
	if err != nil || strings.Count(out, " ok\n") != 3 || !strings.Contains(out, "engine terraform") {
		t.Fatalf("lab status: %v\n%s", err, out)
	}
	out, err = labCmd("plan")
	if err != nil || !strings.Contains(lastLine(out), "no changes") {
		t.Fatalf("lab plan: %v\n%s", err, out)
	}
	if out, err := labCmd("down"); err != nil {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		entries, _ := os.ReadDir(state)
		t.Fatalf("lab down left %v", entries)
	}
	for _, p := range ports {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", p), 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("port %d still answers after lab down", p)
		}
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
