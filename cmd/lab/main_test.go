package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv/ps/pstest"
	"github.com/calclab/calclab/infra/terraform"
	"github.com/calclab/calclab/internal/testcluster"
)

// TestPlanHyperV: `lab plan --provider hyperv --out DIR` on the
// repository's lab.yaml writes one script per step, network.ps1 and each
// node's seed and network-config, all without a Windows host, and every
// script parses as PowerShell.
func TestPlanHyperV(t *testing.T) {
	dir := t.TempDir()
	labFile := repoLab(t, dir)
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
	// status and down of a lab never brought up speak to no host; status
	// prints every node and exits non-zero, saying the lab is not up.
	stdout.Reset()
	if err := run([]string{"--file", labFile, "--state-dir", state, "--provider", "hyperv", "status"}, &stdout); err == nil || !strings.Contains(err.Error(), "lab calclab is not up (lab up starts it)") {
		t.Fatalf("status of a lab never up: %v", err)
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
	// (a failed up leaves the provider in charge of its state dir: another dir)
	err = run([]string{"--file", labFile, "--state-dir", filepath.Join(dir, "other"), "--provider", "qemu", "plan"}, &stdout)
	if !errors.Is(err, driver.ErrUnsupported) {
		t.Fatalf("plan with qemu: %v", err)
	}
}

// TestArguments: global flags work before or after the command, and
// arguments the command does not take are errors that say what was wrong
// (they were ignored or blamed on lab.yaml before).
func TestArguments(t *testing.T) {
	dir := t.TempDir()
	good := repoLab(t, dir)
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
		{"unknown flag", []string{"--file", good, "--bogus", "validate"}, "validate: unknown flag --bogus", ""},
		{"unknown flag after up", []string{"--file", good, "up", "--force"}, "up: unknown flag --force", ""},
		{"unknown status flag", []string{"--file", good, "--state-dir", state, "status", "--yaml"}, "status: unknown flag --yaml", ""},
		{"status without a value", []string{"--file", good, "status", "--file"}, "flag needs an argument", ""},
		{"validate as JSON", []string{"validate", "--json", "--file", good}, "", `"Provider": "local"`},
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
	file := repoLab(t, dir)
	state := filepath.Join(dir, ".lab")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "engine"), []byte("terraform\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := run([]string{"--file", file, "--state-dir", state, "--engine", "native", "up"}, &out)
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
	ports, state, labCmd := localLab(t, "tfcli")

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

func TestMain(m *testing.M) {
	code := m.Run()
	testcluster.RemoveBinaries()
	os.Exit(code)
}

// binaries builds master, slave and the terraform provider once per run.
func binaries(t *testing.T) string {
	return testcluster.Binaries(t, "github.com/calclab/calclab/cmd/terraform-provider-calclab")
}

// localLab writes a three-node local lab.yaml on free ports and returns
// its ports, state dir and a function running lab on it (lab down at the
// end of the test).
func localLab(t *testing.T, name string) ([]int, string, func(...string) (string, error)) {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	ports := testcluster.FreePorts(t, 3)
	lab := fmt.Sprintf("name: %s\nprovider: local\nservices: {master_port: %d, slave_port: %d}\nnodes:\n"+
		"  - {name: master, role: master, ip: 192.168.56.10, local_port: %d}\n"+
		"  - {name: slave-1, role: slave, ip: 192.168.56.11, local_port: %d}\n"+
		"  - {name: slave-2, role: slave, ip: 192.168.56.12, local_port: %d}\n", name, ports[0], ports[1], ports[0], ports[1], ports[2])
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
	return ports, state, labCmd
}

// TestNodeVerbs: the verbs Vagrant, Lima and Multipass users reach for,
// on a real local lab: info, exec, stop (status then fails and names the
// node), start brings only that node back, restart, and a failed up that
// shows the failing node's log and says what to do.
func TestNodeVerbs(t *testing.T) {
	ports, state, lab := localLab(t, "verbs")
	if out, err := lab("up"); err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	out, err := lab("info", "slave-1", "--json")
	var info struct {
		Node, Role, Health, URL string
		PID                     int
		Settings                []string
	}
	if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.Health != "ok" || info.PID == 0 ||
		!slices.Contains(info.Settings, fmt.Sprintf("CALCLAB_MASTER=http://127.0.0.1:%d", ports[0])) {
		t.Fatalf("lab info slave-1 --json: %v\n%s", err, out)
	}
	for _, s := range info.Settings {
		if strings.HasPrefix(s, "CALCLAB_TOKEN=") {
			t.Fatalf("lab info shows the token: %s", s)
		}
	}
	// The lab's token is in no process's command line and no log.
	token, err := os.ReadFile(filepath.Join(state, "token"))
	if err != nil || len(token) < 32 {
		t.Fatalf("the lab's token: %v", err)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", info.PID))
	logs, _ := lab("logs", "slave-1")
	if len(cmdline) == 0 || strings.Contains(string(cmdline), "token") || strings.Contains(logs, strings.TrimSpace(string(token))) {
		t.Fatalf("the token shows: command line %q, log:\n%s", cmdline, logs)
	}
	// exec runs in the node's directory with its service's settings.
	script := filepath.Join(t.TempDir(), "env.out")
	if _, err := lab("exec", "slave-2", "--", "sh", "-c", "pwd > "+script+"; echo $CALCLAB_ID >> "+script); err != nil {
		t.Fatalf("lab exec: %v", err)
	}
	got, _ := os.ReadFile(script)
	if want := filepath.Join(state, "slave-2") + "\nslave-2\n"; string(got) != want {
		t.Fatalf("lab exec saw %q, want %q", got, want)
	}
	if _, err := lab("exec", "slave-2"); err == nil || !strings.Contains(err.Error(), "usage: lab exec NODE -- CMD") {
		t.Fatalf("exec without a command: %v", err)
	}

	if out, err := lab("stop", "slave-2"); err != nil {
		t.Fatalf("lab stop slave-2: %v\n%s", err, out)
	}
	out, err = lab("status")
	if err == nil || !strings.Contains(err.Error(), "slave-2 stopped") {
		t.Fatalf("status with slave-2 stopped: %v\n%s", err, out)
	}
	before, _ := lab("info", "slave-1", "--json")
	if out, err := lab("start", "slave-2"); err != nil || !strings.Contains(out, "1 of 1 slaves registered") {
		t.Fatalf("lab start slave-2: %v\n%s", err, out)
	}
	after, _ := lab("info", "slave-1", "--json")
	if pid(before) != pid(after) {
		t.Fatalf("start slave-2 restarted slave-1 (pid %d -> %d)", pid(before), pid(after))
	}
	if out, err := lab("status"); err != nil {
		t.Fatalf("status after start: %v\n%s", err, out)
	}
	if out, err := lab("restart", "slave-1"); err != nil {
		t.Fatalf("lab restart slave-1: %v\n%s", err, out)
	}
	if again, _ := lab("info", "slave-1", "--json"); pid(again) == pid(after) || pid(again) == 0 {
		t.Fatalf("restart kept pid %d", pid(again))
	}
	if _, err := lab("stop", "slave-9"); err == nil || !strings.Contains(err.Error(), `no node "slave-9"`) {
		t.Fatalf("stop of an unknown node: %v", err)
	}

	// A failed up names the node, shows its log's last lines and says
	// what to do: slave-2's port is taken while it is stopped.
	if _, err := lab("stop", "slave-2"); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	out, err = lab("up")
	t.Logf("failed up:\n%s\n%v", out, err)
	if err == nil || !strings.Contains(out, "the last lines of its log (lab logs slave-2)") || !strings.Contains(out, "lab down") {
		t.Fatalf("up with slave-2's port taken: %v\n%s", err, out)
	}
}

// repoLab copies the repository's lab.yaml into dir and returns its path.
func repoLab(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "lab.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func pid(infoJSON string) int {
	var v struct{ PID int }
	_ = json.Unmarshal([]byte(infoJSON), &v)
	return v.PID
}

// TestCompletion: the bash and zsh scripts are valid shell, fish's lists
// every command, and the hidden node lister prints lab.yaml's nodes.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		var out bytes.Buffer
		if err := run([]string{"completion", sh}, &out); err != nil {
			t.Fatalf("completion %s: %v", sh, err)
		}
		for _, v := range verbNames() {
			if !strings.Contains(out.String(), v) {
				t.Errorf("completion %s lacks %s", sh, v)
			}
		}
		if sh == "bash" {
			check := exec.Command("bash", "-n")
			check.Stdin = &out
			if msg, err := check.CombinedOutput(); err != nil {
				t.Fatalf("bash -n on the bash completion: %v\n%s", err, msg)
			}
		}
	}
	if err := run([]string{"completion", "tcsh"}, io.Discard); err == nil || !strings.Contains(err.Error(), "use bash, zsh or fish") {
		t.Fatalf("completion tcsh: %v", err)
	}
	var out bytes.Buffer
	if err := run([]string{"--file", filepath.Join("..", "..", "lab.yaml"), "--state-dir", t.TempDir(), completeNodes}, &out); err != nil || out.String() != "master\nslave-1\nslave-2\n" {
		t.Fatalf("__nodes: %v %q", err, out.String())
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestEnginesReachHyperV: lab up --engine terraform|pulumi --provider
// hyperv goes through the resource model to the hyperv driver, which on a
// machine without Windows PowerShell says what to do; lab down then
// leaves nothing. Never run against real Hyper-V.
func TestEnginesReachHyperV(t *testing.T) {
	if _, err := exec.LookPath("powershell.exe"); err == nil {
		t.Skip("powershell.exe is on PATH: this test is for machines without it")
	}
	if _, err := terraform.FindTerraform(context.Background()); err != nil {
		t.Skipf("%v (make tools builds it)", err)
	}
	bin := binaries(t)
	// VM providers install bin/linux-amd64/{master,slave}: stand-ins will do.
	if err := os.MkdirAll(filepath.Join(bin, "linux-amd64"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"master", "slave"} {
		if err := os.WriteFile(filepath.Join(bin, "linux-amd64", role), []byte(role), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	file := repoLab(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "noble-server-cloudimg-amd64.img"), []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, ".lab")
	var out bytes.Buffer
	err := run([]string{"--file", file, "--state-dir", state, "--bin-dir", bin, "--engine", "terraform", "--provider", "hyperv", "up"}, &out)
	if err == nil || !strings.Contains(err.Error(), "powershell.exe not found") || !strings.Contains(err.Error(), "hyperv: {host:") {
		t.Fatalf("lab up --engine terraform --provider hyperv without Windows: %v\n%s", err, out.String())
	}
	if err := run([]string{"--file", file, "--state-dir", state, "--bin-dir", bin, "down"}, &out); err != nil {
		t.Fatalf("lab down: %v\n%s", err, out.String())
	}
	if entries, err := os.ReadDir(state); !os.IsNotExist(err) {
		t.Fatalf("lab down left %v", entries)
	}
}
