package hyperv_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv"
	"github.com/calclab/calclab/infra/lab"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/sshdtest"
	"github.com/calclab/calclab/provision/sshkeys"
)

const labYAML = `name: hvlab
provider: hyperv
network: {name: hvlab-internal, cidr: 10.77.0.0/24}
ssh_user: lab
hyperv: {host: 127.0.0.1, port: %d, user: %s, image: %s}
nodes:
  - {name: master, role: master, ip: 10.77.0.10, cpus: 2, memory_mb: 2048}
  - {name: slave-1, role: slave, ip: 10.77.0.11}
  - {name: slave-2, role: slave, ip: 10.77.0.12}
`

// fakeLab is a lab on a FakeHost whose "Windows host" SSH server is a real
// sshd (the jump host) and whose VMs, once the fake starts them, are real
// sshds too, with stand-ins for cloud-init, sudo and journalctl on their
// PATH. Hyper-V itself is the fake.
type fakeLab struct {
	t     *testing.T
	dir   string
	spec  *spec.Lab
	host  *hyperv.FakeHost
	drv   *hyperv.Driver
	auth  string
	user  string
	mu    sync.Mutex
	ports map[string]int
	vms   map[string]*sshdtest.Server
}

func newFakeLab(t *testing.T, image string) *fakeLab {
	t.Helper()
	sshdtest.Require(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	_, auth, err := sshkeys.EnsureKeyPair(driver.KeyDir(state))
	if err != nil {
		t.Fatal(err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	jump := sshdtest.Start(t, filepath.Join(dir, "jump"), auth, 0)
	port := strings.TrimPrefix(jump.Addr, "127.0.0.1:")
	if image == "" {
		image = filepath.Join(dir, "noble.img")
		makeImage(t, image)
	}
	yaml := fmt.Sprintf(labYAML, atoi(t, port), u.Username, image)
	if err := os.WriteFile(filepath.Join(dir, "lab.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := spec.Load(filepath.Join(dir, "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLab{t: t, dir: dir, spec: s, host: hyperv.NewFakeHost(), auth: auth, user: u.Username,
		ports: map[string]int{}, vms: map[string]*sshdtest.Server{}}
	for _, n := range s.Nodes {
		fl.ports[n.Name] = sshdtest.FreePort(t)
	}
	bin, err := filepath.Abs(filepath.Join("testdata", "vm-bin"))
	if err != nil {
		t.Fatal(err)
	}
	fl.host.OnStart = func(vm hyperv.FakeVM) {
		node := strings.TrimPrefix(vm.Name, "hvlab-")
		fl.mu.Lock()
		defer fl.mu.Unlock()
		if fl.vms[node] != nil {
			return
		}
		fl.vms[node] = sshdtest.Start(t, filepath.Join(dir, "vm-"+node), auth, fl.ports[node], "SetEnv PATH="+bin+":/usr/bin:/bin")
	}
	fl.drv = &hyperv.Driver{Dir: state, Exec: fl.host, Files: fl.host, BootTimeout: time.Minute,
		NodeSSH: func(node string) (string, string) {
			return fmt.Sprintf("127.0.0.1:%d", fl.ports[node]), u.Username
		}}
	return fl
}

func atoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// makeImage makes a small qcow2 "cloud image" of an odd size (so the
// conversion's MiB alignment matters), or skips when qemu-img is missing.
func makeImage(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Skip("qemu-img not installed (apt-get install qemu-utils): the image conversion is part of this test")
	}
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, "10000000").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v %s", err, out)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// TestFakeHyperVLabUpStatusSSHLogsDown drives a whole lab through the
// hyperv driver with the fake Hyper-V host: up (every script, the image
// converted with the real qemu-img and uploaded, seeds uploaded), the
// shared readiness wait over SSH through the jump host, status, ssh (the
// real OpenSSH client with ProxyJump), logs (the journal over SSH), a
// second up that changes nothing, and down, which leaves the fake host as
// it found it.
func TestFakeHyperVLabUpStatusSSHLogsDown(t *testing.T) {
	fl := newFakeLab(t, "")
	c := ctx(t)
	var steps []string
	progress := func(s driver.Step) {
		if s.Done || s.Err != nil {
			steps = append(steps, s.Node+" "+s.Step)
		}
		if s.Err != nil {
			t.Logf("step %s %s failed: %v", s.Node, s.Step, s.Err)
		}
	}
	if err := fl.drv.Up(c, fl.spec, progress); err != nil {
		t.Fatal(err)
	}
	h := fl.host
	if h.Switches["hvlab-internal"] != "Internal" || h.IPs["10.77.0.1"] != "vEthernet (hvlab-internal)" || h.NATs["hvlab-nat"] != "10.77.0.0/24" {
		t.Fatalf("network on the fake host: switches %v, addresses %v, NATs %v", h.Switches, h.IPs, h.NATs)
	}
	pl, err := hyperv.NewPlan(fl.spec, fl.auth)
	if err != nil {
		t.Fatal(err)
	}
	l := pl.Layout
	macs := hyperv.MACs(fl.spec)
	for _, n := range fl.spec.Nodes {
		vm := h.VMs[l.VMName(n.Name)]
		if vm == nil || vm.Generation != 2 || !vm.SecureBoot || vm.Template != "MicrosoftUEFICertificateAuthority" || vm.State != "Running" {
			t.Fatalf("VM of %s: %+v", n.Name, vm)
		}
		if vm.MAC != hyperv.HyperVMAC(macs[n.Name]) || vm.DVD != l.SeedPath(n.Name) || vm.CPUs != n.CPUs || vm.MemoryBytes != int64(n.Memory)<<20 {
			t.Fatalf("VM of %s: %+v (MAC %s)", n.Name, vm, macs[n.Name])
		}
		seed := h.Files[l.SeedPath(n.Name)]
		if !bytes.Contains(seed, []byte(`macaddress: "`+macs[n.Name]+`"`)) || !bytes.Contains(seed, []byte(`"`+n.IP+`/24"`)) {
			t.Fatalf("seed of %s on the host does not match its MAC %s and address", n.Name, macs[n.Name])
		}
	}
	base := h.Files[l.BaseVhdx()]
	if !bytes.HasPrefix(base, []byte("vhdxfile")) {
		t.Fatalf("base disk on the host is not a VHDX (%d bytes)", len(base))
	}
	if h.Mappings[5000] != "10.77.0.10:5000" || h.Mappings[6002] != "10.77.0.12:6001" || len(h.Rules) != 3 {
		t.Fatalf("published ports %v, rules %v", h.Mappings, h.Rules)
	}

	// The shared readiness wait, through the jump host to each VM.
	for _, n := range fl.spec.Nodes {
		if err := lab.WaitBooted(c, fl.drv, fl.spec, n.Name, progress); err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
	}
	var out bytes.Buffer
	lb := &lab.Lab{Spec: fl.spec, Driver: fl.drv, Out: &out, StateDir: fl.drv.Dir}
	if _, err := lb.Status(c, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "master") || !strings.Contains(out.String(), "127.0.0.1:5000") {
		t.Fatalf("status:\n%s", out.String())
	}
	cfg, err := lb.SSHConfig()
	if err != nil || !strings.Contains(cfg, "ProxyJump "+hyperv.JumpName) {
		t.Fatalf("ssh-config: %v\n%s", err, cfg)
	}
	if _, err := exec.LookPath("ssh"); err == nil {
		var so, se bytes.Buffer
		if err := lb.SSH(c, "slave-1", []string{"echo", "hello-from-slave-1"}, strings.NewReader(""), &so, &se); err != nil || strings.TrimSpace(so.String()) != "hello-from-slave-1" {
			t.Fatalf("lab ssh slave-1: %v %q %s", err, so.String(), se.String())
		}
	}
	var logs bytes.Buffer
	if err := lb.Logs(c, "master", false, &logs); err != nil || !strings.Contains(logs.String(), "-u calclab-master.service") {
		t.Fatalf("lab logs master: %v %q", err, logs.String())
	}

	// Up again converges: nothing is created twice.
	before := len(h.Calls)
	if err := fl.drv.Up(c, fl.spec, nil); err != nil {
		t.Fatal(err)
	}
	for _, call := range h.Calls[before:] {
		if call.Kind == "vm" && strings.Contains(call.Text, "New-VM") && len(h.VMs) != 3 {
			t.Fatalf("second up made VMs: %d", len(h.VMs))
		}
	}
	if len(h.VMs) != 3 || len(h.Switches) != 1 || len(h.NATs) != 1 {
		t.Fatalf("after a second up: %d VMs, %d switches, %d NATs", len(h.VMs), len(h.Switches), len(h.NATs))
	}

	if err := lb.Down(c); err != nil {
		t.Fatal(err)
	}
	if len(h.VMs)+len(h.Switches)+len(h.NATs)+len(h.IPs)+len(h.Mappings)+len(h.Rules)+len(h.Files) != 0 {
		t.Fatalf("down left: VMs %v switches %v NATs %v IPs %v mappings %v rules %v files %v", h.VMs, h.Switches, h.NATs, h.IPs, h.Mappings, h.Rules, keys(h.Files))
	}
	if _, err := os.Stat(filepath.Join(fl.drv.Dir, "hyperv-state.json")); !os.IsNotExist(err) {
		t.Fatalf("state file after down: %v", err)
	}
	n := len(h.Calls)
	if err := fl.drv.Down(c, fl.spec); err != nil || len(h.Calls) != n {
		t.Fatalf("second down: %v, %d more scripts", err, len(h.Calls)-n)
	}
	t.Logf("steps: %s", strings.Join(steps, ", "))
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFakeHyperVErrorsInWords: the errors a Windows user meets come back
// as what is wrong and what to do, from the fake host's answers (the same
// error ids the scripts raise).
func TestFakeHyperVErrorsInWords(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *hyperv.FakeHost)
		image string
		want  []string
	}{
		{"not elevated", func(h *hyperv.FakeHost) { h.NotElevated = true }, "", []string{hyperv.ProblemNotElevated, "Run as Administrator", "Hyper-V Administrators"}},
		{"Hyper-V feature off", func(h *hyperv.FakeHost) { h.NoHyperV = true }, "", []string{hyperv.ProblemHyperVOff, "Enable-WindowsOptionalFeature"}},
		{"vmms stopped", func(h *hyperv.FakeHost) { h.ServiceOff = true }, "", []string{hyperv.ProblemHyperVOff, "Start-Service vmms"}},
		{"switch name taken", func(h *hyperv.FakeHost) { h.Switches["hvlab-internal"] = "External" }, "", []string{hyperv.ProblemSwitchTaken, "External switch named 'hvlab-internal'", "network.name"}},
		{"old host", func(h *hyperv.FakeHost) { h.Build = 10586 }, "", []string{hyperv.ProblemTemplate, "MicrosoftUEFICertificateAuthority", "1607"}},
		{"NAT overlaps", func(h *hyperv.FakeHost) { h.NATs["DockerNAT"] = "10.77.0.128/25" }, "", []string{hyperv.ProblemNAT, "'DockerNAT' (10.77.0.128/25)", "Remove-NetNat"}},
		{"another NAT on a client host", func(h *hyperv.FakeHost) { h.NATs["WinNAT"] = "172.28.0.0/16" }, "", []string{hyperv.ProblemNAT, "WinNAT (172.28.0.0/16)"}},
		{"image missing", nil, "/nonexistent/noble.img", []string{hyperv.ProblemImageMissing, "hyperv.image"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := newFakeLab(t, tt.image)
			if tt.setup != nil {
				tt.setup(fl.host)
			}
			err := fl.drv.Up(ctx(t), fl.spec, nil)
			if err == nil {
				t.Fatal("up succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
			// Down after a failed up removes what was made, and only that.
			if err := fl.drv.Down(ctx(t), fl.spec); err != nil {
				t.Fatalf("down after failed up: %v", err)
			}
			if len(fl.host.VMs) != 0 {
				t.Fatalf("VMs left: %v", fl.host.VMs)
			}
		})
	}
}

// TestFakeHyperVReusesAndLeavesWhatItFound: an Internal switch of the
// lab's name and a NAT covering its network are reused, the port
// mappings go on that NAT, and down leaves both in place.
func TestFakeHyperVReusesAndLeavesWhatItFound(t *testing.T) {
	fl := newFakeLab(t, "")
	h := fl.host
	h.Switches["hvlab-internal"] = "Internal"
	h.NATs["shared-nat"] = "10.0.0.0/8"
	h.VMs["other-vm"] = &hyperv.FakeVM{Name: "other-vm", State: "Running"}
	if err := fl.drv.Up(ctx(t), fl.spec, nil); err != nil {
		t.Fatal(err)
	}
	if len(h.NATs) != 1 || h.Mappings[5000] != "10.77.0.10:5000" {
		t.Fatalf("NATs %v, mappings %v", h.NATs, h.Mappings)
	}
	if err := fl.drv.Down(ctx(t), fl.spec); err != nil {
		t.Fatal(err)
	}
	if h.Switches["hvlab-internal"] != "Internal" || h.NATs["shared-nat"] != "10.0.0.0/8" || h.VMs["other-vm"] == nil {
		t.Fatalf("down removed what it found: switches %v NATs %v VMs %v", h.Switches, h.NATs, h.VMs)
	}
	if len(h.VMs) != 1 || len(h.Mappings) != 0 || len(h.IPs) != 0 {
		t.Fatalf("down left its own: VMs %v mappings %v IPs %v", h.VMs, h.Mappings, h.IPs)
	}
	// A VM of a node's name that the lab did not make is refused.
	h.VMs["hvlab-master"] = &hyperv.FakeVM{Name: "hvlab-master", Notes: "someone else's", State: "Off"}
	if err := fl.drv.Up(ctx(t), fl.spec, nil); err == nil || !strings.Contains(err.Error(), "already exists and this lab did not create it") {
		t.Fatalf("up over a foreign VM: %v", err)
	}
	if err := fl.drv.Down(ctx(t), fl.spec); err != nil {
		t.Fatal(err)
	}
	if h.VMs["hvlab-master"] == nil || h.VMs["hvlab-master"].Notes != "someone else's" {
		t.Fatal("down removed a VM the lab did not create")
	}
	if len(h.Files) != 0 {
		t.Fatalf("down left files it uploaded: %v", keys(h.Files))
	}
}
