// Package e2egen2 rehearses on QEMU how Hyper-V boots a Generation 2 VM of
// the lab: one node (lab.yaml's master) from the image of
// scripts/build-image-gen2.sh, booted the way the hyperv provider sets it
// up, with nothing of Hyper-V faked:
//
//   - firmware: UEFI with Secure Boot on and Microsoft's keys enrolled
//     (Debian's OVMF_CODE_4M.ms.fd read-only + a copy of OVMF_VARS_4M.ms.fd,
//     q35 with SMM), what Set-VMFirmware -EnableSecureBoot On
//     -SecureBootTemplate MicrosoftUEFICertificateAuthority gives; the boot
//     chain is Microsoft-signed shim, Debian-signed GRUB and kernel;
//   - disk: the image converted to a dynamic VHDX with a 1 MiB-aligned
//     virtual size (qemu-img convert -O vhdx -o subformat=dynamic), the file
//     the provider imports, on a SCSI controller (Gen2 has no IDE);
//   - seed: provision/cloudinit's NoCloud ISO on a SCSI CD/DVD drive;
//   - NIC: spec.HyperVMAC (00:15:5d:...) matched by the node's
//     network-config, with the node's static address and the network's
//     gateway. The host reaches the VM at that address through QEMU's
//     user-mode network, whose host side is the gateway (on Hyper-V: the
//     host's vEthernet address on the internal switch).
//
// The guest must say itself that Secure Boot is on (its kernel log and
// mokutil --sb-state, over SSH) and show its static address on that NIC.
// Then the qemu provider boots the same image as a lab (bin/lab up with
// image: naming it): its "image without a kernel" path, through the same
// firmware.
//
// It boots VMs for minutes under TCG, so it runs only with
// CALCLAB_E2E_GEN2=1 and never under -short; `make e2e-gen2` builds the
// image and the binaries and runs it. The phase times go to
// artifacts/e2e-gen2-times.txt.
package e2egen2

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/infra/driver/hyperv"
	"github.com/calclab/calclab/infra/driver/qemu"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/freeport"
	"github.com/calclab/calclab/provision/cloudinit"
	"github.com/calclab/calclab/provision/sshkeys"
)

type phase struct {
	name string
	d    time.Duration
	ok   bool
	note string
}

type gen2 struct {
	t    *testing.T
	ctx  context.Context
	root string // the repository
	dir  string // this run's files
	lab  *spec.Lab
	node spec.Node
	mac  string

	image string // the qcow2 scripts/build-image-gen2.sh built
	vhdx  string
	seed  string
	uefi  qemu.UEFI

	signer   ssh.Signer
	authLine string
	hosts    *sshkeys.KnownHosts
	sshPort  int
	console  string
	qemu     *exec.Cmd
	exited   chan error
	poweron  time.Time
	client   *ssh.Client

	phases []phase
}

func TestGen2OnQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU VMs: not under -short")
	}
	if os.Getenv("CALCLAB_E2E_GEN2") != "1" {
		t.Skip("boots a UEFI Secure Boot VM for minutes: set CALCLAB_E2E_GEN2=1 (make e2e-gen2 does)")
	}
	g := setup(t)
	defer g.writeTimes()
	defer g.stop()

	g.phase("image (build or reuse)", g.findImage)
	g.phase("convert to dynamic VHDX", g.convert)
	g.phase("seed ISO + static MAC", g.makeSeed)
	g.phase("power-on to 'Secure boot enabled'", g.bootToSecureBoot)
	g.phase("boot to SSH", g.bootToSSH)
	g.phase("cloud-init done", g.cloudInitDone)
	g.phase("guest: Secure Boot, static address", g.guestChecks)
	g.phase("stop the VM", func() string { g.stop(); return "" })
	g.phase("qemu provider: lab up with the image", g.providerUp)
}

func setup(t *testing.T) *gen2 {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found in PATH (make e2e-gen2 installs it: scripts/vm-deps.sh)", bin)
		}
	}
	lab, err := spec.Load(filepath.Join(root, "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if dl, ok := t.Deadline(); ok {
		ctx, cancel = context.WithDeadline(context.Background(), dl.Add(-30*time.Second))
	}
	t.Cleanup(cancel)
	g := &gen2{t: t, ctx: ctx, root: root, dir: t.TempDir(), lab: lab, node: lab.Master()}
	// The MAC the hyperv provider gives the node (Set-VMNetworkAdapter
	// -StaticMacAddress); spec.HyperVMAC unless two nodes' hashes collide.
	g.mac = hyperv.MACs(lab)[g.node.Name]
	if want := spec.HyperVMAC(lab.Name, g.node.Name); g.mac != want {
		t.Fatalf("hyperv.MACs gives %s %s, spec.HyperVMAC %s", g.node.Name, g.mac, want)
	}
	return g
}

// phase runs one step and records its time; a failed step (t.Fatal in
// fn) is recorded before the test stops.
func (g *gen2) phase(name string, fn func() string) {
	fmt.Printf("=== phase: %s\n", name)
	start := time.Now()
	p := phase{name: name}
	defer func() {
		if p.d == 0 {
			p.d = time.Since(start)
		}
		g.phases = append(g.phases, p)
		fmt.Printf("--- phase: %s: %s %s\n", name, fmtDur(p.d), map[bool]string{true: "ok", false: "FAILED"}[p.ok])
	}()
	p.note = fn()
	if v, ok := phaseTimes[name]; ok {
		p.d = v
		delete(phaseTimes, name)
	}
	p.ok = !g.t.Failed()
}

// phaseTimes overrides a phase's measured time (the image: timed by make).
var phaseTimes = map[string]time.Duration{}

func (g *gen2) findImage() string {
	script := filepath.Join(g.root, "scripts", "build-image-gen2.sh")
	out, err := exec.CommandContext(g.ctx, "bash", script, "--print-path").Output()
	path := strings.TrimSpace(string(out))
	if err != nil {
		g.t.Fatalf("the Gen2 image %s is not built: run sudo %s (make e2e-gen2 does): %v", path, script, err)
	}
	g.image = path
	note := filepath.Base(path)
	if s := os.Getenv("CALCLAB_E2E_GEN2_IMAGE_SECONDS"); s != "" {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			phaseTimes["image (build or reuse)"] = time.Duration(v * float64(time.Second))
			note += " (scripts/build-image-gen2.sh, timed by make)"
		}
	}
	return note
}

type imgInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	ActualSize  int64  `json:"actual-size"`
}

func info(ctx context.Context, path string) (imgInfo, error) {
	out, err := exec.CommandContext(ctx, "qemu-img", "info", "--output=json", path).Output()
	if err != nil {
		return imgInfo{}, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	var i imgInfo
	return i, json.Unmarshal(out, &i)
}

// convert makes the VHDX with the hyperv provider's own conversion (what
// it uploads and imports as the base disk).
func (g *gen2) convert() string {
	g.vhdx = filepath.Join(g.dir, g.node.Name+".vhdx")
	if err := hyperv.ConvertImage(g.ctx, "qemu-img", g.image, g.vhdx); err != nil {
		g.t.Fatalf("hyperv.ConvertImage: %v", err)
	}
	i, err := info(g.ctx, g.vhdx)
	if err != nil {
		g.t.Fatal(err)
	}
	if i.Format != "vhdx" {
		g.t.Fatalf("converted disk is %q, want vhdx", i.Format)
	}
	if i.VirtualSize%(1<<20) != 0 {
		g.t.Fatalf("VHDX virtual size %d is not a multiple of 1 MiB (Hyper-V refuses it)", i.VirtualSize)
	}
	return fmt.Sprintf("virtual %d MiB, %d MiB on disk", i.VirtualSize>>20, i.ActualSize>>20)
}

func (g *gen2) makeSeed() string {
	var err error
	g.signer, g.authLine, err = sshkeys.EnsureKeyPair(filepath.Join(g.dir, "ssh"))
	if err != nil {
		g.t.Fatal(err)
	}
	if g.hosts, err = sshkeys.OpenKnownHosts(filepath.Join(g.dir, "ssh", "known_hosts")); err != nil {
		g.t.Fatal(err)
	}
	// The node's seed as the hyperv provider makes it: one NIC matched by
	// the node's static MAC, its static address, the route via the host.
	cfg, err := hyperv.Seed(g.lab, g.node, g.mac, g.authLine)
	if err != nil {
		g.t.Fatal(err)
	}
	prefix := netip.MustParsePrefix(g.lab.Network.CIDR)
	g.seed = filepath.Join(g.dir, "seed.iso")
	if err := cloudinit.WriteISO(g.seed, cfg); err != nil {
		g.t.Fatal(err)
	}
	return fmt.Sprintf("%s %s/%d via %s", g.mac, g.node.IP, prefix.Bits(), g.lab.HostIP())
}

func freePort() (int, error) { return freeport.Loopback() }

// args is the VM's command line: what New-VM -Generation 2 + Set-VMFirmware
// + Add-VMDvdDrive + Set-VMNetworkAdapter -StaticMacAddress make, in QEMU.
func (g *gen2) args(nvram string) []string {
	prefix := netip.MustParsePrefix(g.lab.Network.CIDR)
	lan := fmt.Sprintf("user,id=lan,restrict=on,net=%s,host=%s,hostfwd=tcp:127.0.0.1:%d-%s:22",
		prefix, g.lab.HostIP(), g.sshPort, g.node.IP)
	args := []string{
		"-name", fmt.Sprintf("%s-%s-gen2,process=qemu-%s-%s-gen2", g.lab.Name, g.node.Name, g.lab.Name, g.node.Name),
		"-nodefaults", "-no-user-config",
		"-machine", qemu.UEFIMachine, "-accel", "tcg", "-cpu", "max",
		"-m", strconv.Itoa(g.node.Memory), "-smp", strconv.Itoa(g.node.CPUs),
		"-display", "none", "-vga", "none",
		"-chardev", "file,id=console,path=" + g.console, "-serial", "chardev:console",
	}
	args = append(args, g.uefi.Args(nvram)...)
	return append(args,
		// One SCSI controller with the disk (first boot device) and the
		// DVD drive, as on a Gen2 VM.
		"-device", "virtio-scsi-pci,id=scsi0",
		"-drive", "if=none,id=disk0,format=vhdx,file="+g.vhdx,
		"-device", "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=1",
		"-drive", "if=none,id=dvd0,format=raw,media=cdrom,readonly=on,file="+g.seed,
		"-device", "scsi-cd,drive=dvd0,bus=scsi0.0",
		// No option ROM and strict boot order: the firmware boots the
		// disk or nothing (no minutes of PXE/HTTP boot).
		"-boot", "strict=on",
		"-netdev", lan,
		"-device", "virtio-net-pci,netdev=lan,romfile=,mac="+g.mac,
		"-device", "virtio-rng-pci",
		"-no-reboot",
	)
}

// Lines of the console that mean the VM will not boot: fail at once.
var bootFailures = regexp.MustCompile(`(?m)BdsDxe: failed to load.*|BdsDxe: No bootable option.*|Access Denied.*|^error: .*|Kernel panic.*|grub>`)

// console reads the serial console so far.
func (g *gen2) readConsole() string {
	b, _ := os.ReadFile(g.console)
	return string(b)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitConsole waits for want on the console, failing fast on a boot
// failure, QEMU's exit, or the timeout.
func (g *gen2) waitConsole(want *regexp.Regexp, timeout time.Duration) string {
	g.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := strings.ReplaceAll(g.readConsole(), "\r", "")
		if m := want.FindString(c); m != "" {
			return m
		}
		if m := bootFailures.FindString(c); m != "" {
			g.t.Fatalf("the VM does not boot: console says %q; last console lines:\n%s", m, tailLines(c, 20))
		}
		select {
		case err := <-g.exited:
			g.exited = nil
			g.t.Fatalf("qemu exited (%v); last console lines:\n%s", err, tailLines(c, 20))
		case <-g.ctx.Done():
			g.t.Fatalf("interrupted waiting for %q", want)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("no %q on the console after %s; last console lines:\n%s", want, timeout, tailLines(c, 20))
		}
	}
}

func (g *gen2) bootToSecureBoot() string {
	var err error
	if g.uefi, err = qemu.FindUEFI(); err != nil {
		g.t.Fatal(err)
	}
	nvram := filepath.Join(g.dir, "efivars.fd")
	if err := g.uefi.CopyVars(nvram); err != nil {
		g.t.Fatal(err)
	}
	if g.sshPort, err = freePort(); err != nil {
		g.t.Fatal(err)
	}
	g.console = filepath.Join(g.dir, "console.log")
	args := g.args(nvram)
	fmt.Printf("  $ qemu-system-x86_64 %s\n", strings.Join(args, " "))
	qlog, err := os.Create(filepath.Join(g.dir, "qemu.log"))
	if err != nil {
		g.t.Fatal(err)
	}
	defer qlog.Close()
	g.qemu = exec.Command("qemu-system-x86_64", args...)
	g.qemu.Stdout, g.qemu.Stderr = qlog, qlog
	g.poweron = time.Now()
	if err := g.qemu.Start(); err != nil {
		g.t.Fatal(err)
	}
	g.exited = make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) {
		err := c.Wait()
		if b, _ := os.ReadFile(filepath.Join(g.dir, "qemu.log")); len(b) > 0 {
			err = fmt.Errorf("%v: %s", err, bytes.TrimSpace(b))
		}
		ch <- err
	}(g.qemu, g.exited)
	return g.waitConsole(regexp.MustCompile(`secureboot: Secure boot enabled`), 5*time.Minute)
}

func (g *gen2) dial() (*ssh.Client, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(g.sshPort))
	cfg, err := g.hosts.ClientConfig(g.lab.SSHUser, g.signer, addr)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return ssh.Dial("tcp", addr, cfg)
}

func (g *gen2) bootToSSH() string {
	deadline := time.Now().Add(8 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		c, err := g.dial()
		if err == nil {
			g.client = c
			return fmt.Sprintf("%s@%s (forwarded from 127.0.0.1:%d), %s from power-on", g.lab.SSHUser, g.node.IP, g.sshPort, fmtDur(time.Since(g.poweron)))
		}
		last = err
		if m := bootFailures.FindString(g.readConsole()); m != "" {
			g.t.Fatalf("the VM failed: console says %q", m)
		}
		select {
		case err := <-g.exited:
			g.exited = nil
			g.t.Fatalf("qemu exited (%v); last console lines:\n%s", err, tailLines(g.readConsole(), 20))
		case <-g.ctx.Done():
			g.t.Fatal("interrupted")
		case <-time.After(2 * time.Second):
		}
	}
	g.t.Fatalf("no SSH login at %s within 8 minutes: %v; last console lines:\n%s", g.node.IP, last, tailLines(g.readConsole(), 20))
	return ""
}

// run runs a command on the guest over SSH.
func (g *gen2) run(cmd string) (string, error) {
	s, err := g.client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return strings.TrimSpace(string(out)), err
}

func (g *gen2) cloudInitDone() string {
	out, err := g.run("cloud-init status --wait --long")
	if err != nil || !strings.Contains(out, "status: done") {
		g.t.Fatalf("cloud-init status --wait: %v:\n%s", err, out)
	}
	return fmt.Sprintf("%s from power-on", fmtDur(time.Since(g.poweron)))
}

func (g *gen2) guestChecks() string {
	check := func(name, cmd string, want *regexp.Regexp) string {
		out, err := g.run(cmd)
		fmt.Printf("  guest$ %s\n%s\n", cmd, indent(out, "    "))
		if err != nil {
			g.t.Errorf("%s: %s: %v", name, cmd, err)
			return ""
		}
		m := want.FindString(out)
		if m == "" {
			g.t.Errorf("%s: %s printed no %q", name, cmd, want)
		}
		return m
	}
	klog := check("kernel log", "sudo dmesg | grep -i 'secure *boot'", regexp.MustCompile(`secureboot: Secure boot enabled`))
	mok := check("mokutil", "mokutil --sb-state", regexp.MustCompile(`(?m)^SecureBoot enabled$`))
	// The NIC with the static MAC carries the node's static address (not
	// a DHCP lease: no "dynamic"), and the default route is the gateway.
	check("NIC", "ip -o link", regexp.MustCompile(`(?i)link/ether `+regexp.QuoteMeta(g.mac)))
	ifname := ""
	if out, err := g.run("ip -o link"); err == nil {
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(strings.ToLower(l), g.mac) {
				if f := strings.Fields(l); len(f) > 1 {
					ifname = strings.TrimSuffix(f[1], ":")
				}
			}
		}
	}
	addr := ""
	if ifname == "" {
		g.t.Errorf("no NIC with MAC %s in the guest", g.mac)
	} else {
		prefix := netip.MustParsePrefix(g.lab.Network.CIDR)
		want := fmt.Sprintf("inet %s/%d", g.node.IP, prefix.Bits())
		out, err := g.run("ip -o -4 addr show dev " + ifname)
		fmt.Printf("  guest$ ip -o -4 addr show dev %s\n%s\n", ifname, indent(out, "    "))
		switch {
		case err != nil:
			g.t.Errorf("ip addr: %v", err)
		case !strings.Contains(out, want+" "):
			g.t.Errorf("%s (MAC %s) has no %s", ifname, g.mac, want)
		case strings.Contains(out, "dynamic"):
			g.t.Errorf("%s's address is a DHCP lease, not the static one: %s", ifname, out)
		default:
			addr = fmt.Sprintf("%s/%d on %s (%s)", g.node.IP, prefix.Bits(), ifname, g.mac)
		}
		check("default route", "ip route show default", regexp.MustCompile(`default via `+regexp.QuoteMeta(g.lab.HostIP().String())+` dev `+regexp.QuoteMeta(ifname)))
	}
	check("hostname", "hostname", regexp.MustCompile(`^`+regexp.QuoteMeta(g.node.Name)+`$`))
	fmt.Printf("  The guest's own word: %q (kernel log), %q (mokutil); static address %s over SSH\n", klog, mok, addr)
	return fmt.Sprintf("%q, %q, %s", klog, mok, addr)
}

func indent(s, p string) string {
	return p + strings.ReplaceAll(s, "\n", "\n"+p)
}

// stop powers the VM off (kills QEMU; the disk is a throwaway copy).
func (g *gen2) stop() {
	if g.client != nil {
		g.client.Close()
		g.client = nil
	}
	if g.qemu == nil || g.qemu.Process == nil {
		return
	}
	_ = g.qemu.Process.Kill()
	if g.exited != nil {
		select {
		case <-g.exited:
		case <-time.After(10 * time.Second):
		}
	}
	g.qemu, g.exited = nil, nil
}

// providerUp boots the same image through the qemu provider as a lab:
// `lab up` with image: naming it (no kernel beside it: the driver boots it
// with the same UEFI Secure Boot firmware), then checks the master over
// SSH and takes the lab down.
func (g *gen2) providerUp() string {
	labBin := filepath.Join(g.root, "bin", "lab")
	if _, err := os.Stat(labBin); err != nil {
		g.t.Fatalf("bin/lab is missing: run make build (make e2e-gen2 does)")
	}
	port, err := freePort()
	if err != nil {
		g.t.Fatal(err)
	}
	sport, err := freePort()
	if err != nil {
		g.t.Fatal(err)
	}
	labFile := filepath.Join(g.dir, "lab.yaml")
	doc := fmt.Sprintf(`name: calclab-gen2
provider: qemu
network: {name: calclab-gen2, cidr: %s, gateway: %s}
ssh_user: %s
services: {master_port: %d, slave_port: %d}
nodes:
  - {name: master, role: master, ip: %s, cpus: 1, memory_mb: 768, image: %s}
  - {name: slave-1, role: slave, ip: %s, cpus: 1, memory_mb: 768, image: %s}
`, g.lab.Network.CIDR, g.lab.Network.Gateway, g.lab.SSHUser, port, sport,
		g.node.IP, g.image, g.lab.Slaves()[0].IP, g.image)
	if err := os.WriteFile(labFile, []byte(doc), 0o644); err != nil {
		g.t.Fatal(err)
	}
	state := filepath.Join(g.dir, "lab-state")
	lab := func(timeout time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(g.ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, labBin, append([]string{"--file", labFile, "--state-dir", state}, args...)...)
		cmd.Dir = g.root
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 20 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	defer func() {
		if out, err := lab(2*time.Minute, "down"); err != nil {
			g.t.Errorf("lab down: %v\n%s", err, out)
		}
	}()
	start := time.Now()
	fmt.Printf("  $ bin/lab --file %s up\n", labFile)
	out, err := lab(12*time.Minute, "up")
	fmt.Print(indent(strings.TrimRight(out, "\n"), "    | "), "\n")
	if err != nil {
		g.t.Fatalf("lab up with the Gen2 image: %v", err)
	}
	up := time.Since(start)
	// The driver booted it through UEFI: its QEMU command line has the
	// Secure Boot firmware, and the guest says so.
	logs, _ := filepath.Glob(filepath.Join(state, "master", "qemu.log"))
	more, _ := filepath.Glob(filepath.Join(state, "*", "master", "qemu.log"))
	if logs = append(logs, more...); len(logs) == 0 {
		g.t.Errorf("no master/qemu.log under the lab's state dir %s", state)
	}
	for _, l := range logs {
		if qlog, _ := os.ReadFile(l); !bytes.Contains(qlog, []byte("OVMF_CODE_4M.ms.fd")) || !bytes.Contains(qlog, []byte("smm=on")) {
			g.t.Errorf("the driver's QEMU command line has no Secure Boot firmware (OVMF_CODE_4M.ms.fd, smm=on):\n%s", qlog)
		}
	}
	sb, err := lab(2*time.Minute, "ssh", "master", "--", "mokutil --sb-state; ip -o -4 addr show")
	fmt.Printf("  $ bin/lab ssh master -- mokutil --sb-state; ip -o -4 addr show\n%s\n", indent(strings.TrimSpace(sb), "    "))
	if err != nil || !regexp.MustCompile(`(?m)^SecureBoot enabled`).MatchString(sb) {
		g.t.Errorf("lab ssh master: mokutil --sb-state: %v: %s", err, sb)
	}
	if !strings.Contains(sb, "inet "+g.node.IP+"/") {
		g.t.Errorf("the master has no %s: %s", g.node.IP, sb)
	}
	st, err := lab(time.Minute, "status")
	fmt.Print(indent(strings.TrimSpace(st), "    "), "\n")
	if err != nil {
		g.t.Errorf("lab status: %v", err)
	}
	return fmt.Sprintf("master + slave-1 up and deployed in %s; SecureBoot enabled on the master", fmtDur(up))
}

func (g *gen2) writeTimes() {
	var b bytes.Buffer
	result := "PASS"
	if g.t.Failed() {
		result = "FAIL"
	}
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "calclab e2e-gen2 (UEFI Secure Boot, VHDX, TCG, %s, %d CPUs, %s), %s\n\n", host, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339), result)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tWALL TIME\tRESULT\t")
	var total time.Duration
	for _, p := range g.phases {
		r := "ok"
		if !p.ok {
			r = "FAILED"
		}
		total += p.d
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.name, fmtDur(p.d), r, p.note)
	}
	fmt.Fprintf(tw, "total\t%s\t%s\t\n", fmtDur(total), result)
	tw.Flush()
	fmt.Printf("\n%s\n", b.String())
	dir := filepath.Join(g.root, "artifacts")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(dir, "e2e-gen2-times.txt"), b.Bytes(), 0o644)
		_ = os.WriteFile(filepath.Join(dir, "e2e-gen2-console.log"), []byte(g.readConsole()), 0o644)
	}
}

func fmtDur(d time.Duration) string {
	if d >= time.Minute {
		return fmt.Sprintf("%dm%04.1fs", int(d/time.Minute), math.Mod(d.Seconds(), 60))
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}
