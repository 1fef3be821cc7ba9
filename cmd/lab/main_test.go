package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv/ps/pstest"
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
