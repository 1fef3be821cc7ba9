package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/lab"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/sshkeys"
)

// output runs command on node over SSH (the target the driver hands out)
// and returns its combined output.
func output(ctx context.Context, d *Driver, l *spec.Lab, node, command string) ([]byte, error) {
	t, err := d.SSHTarget(l, node)
	if err != nil {
		return nil, err
	}
	c, err := t.Dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return sshkeys.Run(ctx, c, command)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func testLab(t *testing.T, name string) *spec.Lab {
	t.Helper()
	y := fmt.Sprintf(`name: %s
provider: qemu
network: {cidr: 192.168.56.0/24}
ssh_user: calclab
services: {master_port: 5000, slave_port: 6001}
nodes:
  - {name: master, role: master, ip: 192.168.56.10, cpus: 1, memory_mb: 768}
  - {name: slave-1, role: slave, ip: 192.168.56.11, cpus: 1, memory_mb: 768}
`, name)
	l, err := spec.Parse([]byte(y), filepath.Join(repoRoot(t), "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestMAC(t *testing.T) {
	re := regexp.MustCompile(`^52:54:00(:[0-9a-f]{2}){3}$`)
	a, b := MAC("calclab", "master"), MAC("calclab", "slave-1")
	if !re.MatchString(a) || !re.MatchString(b) {
		t.Fatalf("MACs %s %s are not 52:54:00:xx:xx:xx", a, b)
	}
	if a == b || a != MAC("calclab", "master") || a == MAC("other", "master") {
		t.Fatalf("MACs not deterministic per lab and node: %s %s", a, b)
	}
	lan, nat := assignMACs(testLab(t, "calclab"))
	seen := map[string]bool{}
	for _, m := range []map[string]string{lan, nat} {
		for _, v := range m {
			if seen[v] {
				t.Fatalf("MAC %s given twice", v)
			}
			seen[v] = true
		}
	}
	if lan["master"] != a {
		t.Fatalf("lan MAC of master = %s, want MAC() = %s", lan["master"], a)
	}
	if p := mcastPort("calclab"); p < 20000 || p >= 30000 {
		t.Fatalf("mcast port %d", p)
	}
}

func TestPickPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().(*net.TCPAddr).Port
	taken := map[int]bool{}
	p, err := pickPort(busy, taken)
	if err != nil || p == busy || !taken[p] {
		t.Fatalf("pickPort(busy %d) = %d, %v", busy, p, err)
	}
	q, err := pickPort(p, taken)
	if err != nil || q == p {
		t.Fatalf("pickPort(taken %d) = %d, %v", p, q, err)
	}
}

func TestArgsAndSSHConfig(t *testing.T) {
	l := testLab(t, "calclab")
	dir := t.TempDir()
	d := &Driver{Dir: dir}
	st := &state{Lab: l.Name, Accel: "tcg", Net: NetVDE, Switch: &switchState{Sock: "/x/switch"}, Nodes: map[string]*nodeState{}}
	ns := &nodeState{Dir: filepath.Join(dir, "master"), Disk: filepath.Join(dir, "master", "disk.qcow2"),
		Image: Image{Kernel: "/c/k", Initrd: "/c/i"}, MAC: MAC(l.Name, "master"), NATMAC: "52:54:00:00:00:01",
		SSHPort: 2220, HTTPPort: 5000, GuestPort: 5000}
	st.Nodes["master"] = ns
	args := strings.Join(d.qemuArgs(l, l.Nodes[0], st, ns, "/s.iso", "/c.log"), " ")
	for _, want := range []string{
		"-accel tcg -cpu max", "-m 768 -smp 1", "-kernel /c/k -initrd /c/i",
		"hostfwd=tcp:127.0.0.1:2220-:22,hostfwd=tcp:127.0.0.1:5000-:5000",
		"-netdev vde,id=lan,sock=/x/switch", "virtio-net-pci,netdev=lan,mac=" + ns.MAC,
		"restrict=on", "-daemonize", "-display none",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("qemu args lack %q:\n%s", want, args)
		}
	}
	if err := d.save(st); err != nil {
		t.Fatal(err)
	}
	cfg, err := (&lab.Lab{Spec: l, Driver: d, StateDir: dir}).SSHConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Host master\n", "HostName 127.0.0.1", "Port 2220", "User calclab",
		"IdentityFile " + filepath.Join(dir, "ssh", "id_ed25519"),
		"UserKnownHostsFile " + filepath.Join(dir, "known_hosts"), "StrictHostKeyChecking accept-new",
		"ServerAliveInterval 10", "ServerAliveCountMax 3",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("ssh config lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(cfg, "slave-1") {
		t.Errorf("ssh config names a node without a VM:\n%s", cfg)
	}
}

// TestBootOneVM boots a two-node lab (master + slave-1) on real QEMU VMs,
// checks each VM's static address on the internal switch and that the
// VMs reach each other over it, then takes the lab down. It needs
// qemu-system-x86_64, vde_switch and the image of scripts/build-image.sh;
// under TCG it takes a few minutes (go test -timeout 30m).
func TestBootOneVM(t *testing.T) {
	if testing.Short() {
		t.Skip("boots VMs: minutes; skipped with -short")
	}
	need := func(msg string) {
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img", "vde_switch"} {
		if _, err := exec.LookPath(bin); err != nil {
			need(bin + " not found: apt-get install qemu-system-x86 qemu-utils vde2")
		}
	}
	script := filepath.Join(repoRoot(t), "scripts", "build-image.sh")
	if err := exec.Command("bash", script, "--print-path").Run(); err != nil {
		need("VM image not built: run sudo scripts/build-image.sh (apt: debootstrap qemu-utils e2fsprogs)")
	}

	// Finish (and take the lab down) before go test's own timeout, which
	// would kill the test without running its cleanup and leave the VMs.
	budget := 25 * time.Minute
	if dl, ok := t.Deadline(); ok {
		budget = time.Until(dl) - time.Minute
		if budget < 14*time.Minute {
			need(fmt.Sprintf("booting VMs under TCG needs more time than this test run has (%s): go test -timeout 30m -run TestBootOneVM ./infra/driver/qemu", time.Until(dl).Round(time.Second)))
		}
	}
	l := testLab(t, fmt.Sprintf("qt%d", os.Getpid()%100000))
	dir := filepath.Join(t.TempDir(), ".lab")
	d := &Driver{Dir: dir, BootTimeout: budget - 3*time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	t.Cleanup(func() { _ = d.Down(context.Background(), l) })

	t0 := time.Now()
	err := d.Up(ctx, l, func(s driver.Step) {
		switch {
		case s.Err != nil:
			t.Logf("%-8s %-10s FAILED after %s: %v (%s)", s.Node, s.Step, s.Elapsed.Round(time.Millisecond), s.Err, s.Hint)
		case s.Done:
			t.Logf("%-8s %-10s ok %8s  %s", s.Node, s.Step, s.Elapsed.Round(time.Millisecond), s.Hint)
		}
	})
	if err != nil {
		for _, n := range l.Nodes {
			t.Logf("%s console (tail):\n%s", n.Name, lab.Tail(filepath.Join(dir, n.Name, "console.log"), 40))
		}
		t.Fatalf("up: %v", err)
	}
	// The readiness wait shared by every VM provider: SSH, then cloud-init.
	errs := make([]error, len(l.Nodes))
	var wg sync.WaitGroup
	for i, n := range l.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = lab.WaitBooted(ctx, d, l, n.Name, func(s driver.Step) {
				if s.Done || s.Err != nil {
					t.Logf("%-8s %-10s %8s  %v %s", s.Node, s.Step, s.Elapsed.Round(time.Millisecond), s.Err, s.Hint)
				}
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, n := range l.Nodes {
			t.Logf("%s console (tail):\n%s", n.Name, lab.Tail(filepath.Join(dir, n.Name, "console.log"), 40))
		}
		t.Fatalf("wait booted: %v", err)
	}
	t.Logf("lab up in %s", time.Since(t0).Round(time.Second))

	nodes, err := d.Nodes(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if !n.Running || n.PID == 0 || !strings.HasPrefix(n.URL, "http://127.0.0.1:") {
			t.Errorf("node %+v: want running with a loopback URL", n)
		}
	}

	// Up again converges: nothing restarts.
	var restarted []string
	if err := d.Up(ctx, l, func(s driver.Step) {
		if s.Done && s.Step != "boot" {
			restarted = append(restarted, s.Node+"/"+s.Step)
		}
	}); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if len(restarted) > 0 {
		t.Errorf("second up redid steps %v", restarted)
	}

	for i, n := range l.Nodes {
		other := l.Nodes[1-i]
		out, err := output(ctx, d, l, n.Name, "ip -4 -o addr show")
		if err != nil {
			t.Fatalf("%s: ip addr: %v\n%s", n.Name, err, out)
		}
		t.Logf("%s: ip -4 -o addr:\n%s", n.Name, out)
		if !bytes.Contains(out, []byte("inet "+n.IP+"/24")) {
			t.Errorf("%s: no %s/24 on any NIC", n.Name, n.IP)
		}
		// The static address is on the lan NIC (the one with MAC()).
		link, err := output(ctx, d, l, n.Name, fmt.Sprintf("ip -o link | grep -i %s | cut -d: -f2", MAC(l.Name, n.Name)))
		if err != nil || len(bytes.TrimSpace(link)) == 0 {
			t.Fatalf("%s: no NIC with MAC %s: %v %s", n.Name, MAC(l.Name, n.Name), err, link)
		}
		ifname := string(bytes.TrimSpace(link))
		if !regexp.MustCompile(`\d+: ` + regexp.QuoteMeta(ifname) + `\s+inet ` + regexp.QuoteMeta(n.IP) + `/24`).Match(out) {
			t.Errorf("%s: %s is not on the lan NIC %s", n.Name, n.IP, ifname)
		}
		ping, err := output(ctx, d, l, n.Name, "ping -c 3 -W 5 "+other.IP)
		if err != nil {
			t.Errorf("%s: ping %s over the internal switch: %v\n%s", n.Name, other.IP, err, ping)
		} else {
			t.Logf("%s: ping %s: %s", n.Name, other.IP, lastLine(string(ping)))
		}
	}

	if _, err := exec.LookPath("ssh"); err == nil {
		var out bytes.Buffer
		err := (&lab.Lab{Spec: l, Driver: d, StateDir: dir}).SSH(ctx, "slave-1", []string{"hostname"}, nil, &out, &out)
		if err != nil || strings.TrimSpace(out.String()) != "slave-1" {
			t.Errorf("lab ssh slave-1 hostname (ssh -F .lab/ssh_config): %v %q", err, out.String())
		}
	}

	var pids []int
	for _, n := range nodes {
		pids = append(pids, n.PID)
	}
	if err := (&lab.Lab{Spec: l, Driver: d, StateDir: dir, Out: io.Discard}).Down(ctx); err != nil {
		t.Fatalf("down: %v", err)
	}
	for _, pid := range pids {
		if procAlive(pid, "qemu-system-x86_64", dir) {
			t.Errorf("qemu pid %d still runs after down", pid)
		}
	}
	if out, _ := exec.Command("pgrep", "-af", dir).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("processes of the lab still run after down:\n%s", out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		left, _ := filepath.Glob(filepath.Join(dir, "*"))
		t.Errorf("lab files remain after down: %v", left)
	}
	if err := d.Down(ctx, l); err != nil {
		t.Errorf("second down: %v", err)
	}
}

// TestImageWithoutKernelBootsFromDisk: a qcow2 with no .vmlinuz/.initrd
// beside it (an Ubuntu cloud image the user downloaded) boots through the
// firmware and its own bootloader instead of -kernel.
func TestImageWithoutKernelBootsFromDisk(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "ubuntu-24.04-server-cloudimg-amd64.qcow2")
	if err := os.WriteFile(disk, []byte("qcow2"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := ImageAt(disk)
	if err != nil || img.Kernel != "" || img.Initrd != "" || img.Disk != disk {
		t.Fatalf("ImageAt(disk only) = %+v, %v; want a disk-boot image", img, err)
	}
	// Only one of the two boot files is an incomplete image, not a disk boot.
	os.WriteFile(strings.TrimSuffix(disk, ".qcow2")+".vmlinuz", []byte("k"), 0o644)
	if _, err := ImageAt(disk); err == nil {
		t.Fatal("a kernel without its initrd was accepted")
	}

	l := testLab(t, "calclab")
	d := &Driver{Dir: dir}
	st := &state{Lab: l.Name, Accel: "tcg", Net: NetVDE, Switch: &switchState{Sock: "/x/switch"}, Nodes: map[string]*nodeState{}}
	ns := &nodeState{Dir: filepath.Join(dir, "master"), Disk: filepath.Join(dir, "master", "disk.qcow2"),
		Image: Image{Disk: disk}, MAC: MAC(l.Name, "master"), NATMAC: "52:54:00:00:00:01",
		SSHPort: 2220, HTTPPort: 5000, GuestPort: 5000,
		UEFI: &UEFI{Code: "/ovmf/CODE.ms.fd", Vars: "/ovmf/VARS.ms.fd"}}
	args := strings.Join(d.qemuArgs(l, l.Nodes[0], st, ns, "/s.iso", "/c.log"), " ")
	if strings.Contains(args, "-kernel") || strings.Contains(args, "-append") {
		t.Fatalf("disk-boot image got a kernel: %s", args)
	}
	for _, want := range []string{
		"-drive file=" + ns.Disk + ",if=virtio",
		"-machine q35,smm=on",
		"-global driver=cfi.pflash01,property=secure,value=on",
		"-drive if=pflash,format=raw,unit=0,readonly=on,file=/ovmf/CODE.ms.fd",
		"-drive if=pflash,format=raw,unit=1,file=" + filepath.Join(ns.Dir, "efivars.fd"),
	} {
		if !strings.Contains(args, want) {
			t.Errorf("disk-boot image: %q missing in %s", want, args)
		}
	}
	// The kernel-boot image has no firmware arguments.
	ns.Image, ns.UEFI = Image{Disk: disk, Kernel: "/k", Initrd: "/i"}, nil
	args = strings.Join(d.qemuArgs(l, l.Nodes[0], st, ns, "/s.iso", "/c.log"), " ")
	if strings.Contains(args, "pflash") || strings.Contains(args, "smm=on") {
		t.Errorf("kernel-boot image got UEFI firmware: %s", args)
	}
}

// TestFindUEFI: the Secure Boot build with Microsoft's keys is found where
// CALCLAB_OVMF_DIR points, its absence is an error naming the package, and
// a VM's NVRAM copy is made once and then kept.
func TestFindUEFI(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("CALCLAB_OVMF_DIR", dir)
	if _, err := FindUEFI(); err == nil || !strings.Contains(err.Error(), "ovmf") {
		t.Fatalf("FindUEFI in an empty dir: %v, want an error naming the ovmf package", err)
	}
	for _, f := range []string{"OVMF_CODE_4M.ms.fd", "OVMF_VARS_4M.ms.fd"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	u, err := FindUEFI()
	if err != nil {
		t.Fatal(err)
	}
	if u.Code != filepath.Join(dir, "OVMF_CODE_4M.ms.fd") || u.Vars != filepath.Join(dir, "OVMF_VARS_4M.ms.fd") {
		t.Fatalf("FindUEFI = %+v", u)
	}
	nv := filepath.Join(t.TempDir(), "efivars.fd")
	if err := u.CopyVars(nv); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(nv); string(b) != "OVMF_VARS_4M.ms.fd" {
		t.Fatalf("NVRAM copy holds %q", b)
	}
	// A VM's NVRAM survives: a second CopyVars does not overwrite it.
	if err := os.WriteFile(nv, []byte("boot entries"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := u.CopyVars(nv); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(nv); string(b) != "boot entries" {
		t.Fatalf("CopyVars overwrote the VM's NVRAM: %q", b)
	}
}
