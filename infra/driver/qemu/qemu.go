// Package qemu is the lab provider that runs every node as a QEMU VM on
// this machine: a Debian 12 image built by scripts/build-image.sh, booted
// with its own kernel (-kernel/-initrd), one qcow2 overlay and one NoCloud
// seed ISO per node, a NAT NIC with host ports forwarded on 127.0.0.1 (SSH
// and the node's calclab service) and a NIC on an internal switch holding
// the static addresses of lab.yaml.
//
// Files (under Driver.Dir, normally .lab):
//
//	qemu-state.json         pids, ports, MACs, accelerator, switch
//	qemu/                   the switch (vde_switch sockets, pid)
//	<node>/disk.qcow2       overlay on the cached base image
//	<node>/seed.iso         cloud-init NoCloud seed
//	<node>/console.log      the serial console (kernel, systemd, cloud-init)
//	<node>/qemu.log         QEMU's own errors
//	<node>/qemu.pid
//	ssh/id_ed25519{,.pub}   the lab's SSH key
//	known_hosts             host keys (ssh_config beside it is written by infra/lab)
//
// The base image in the cache (~/.cache/calclab) is never written or
// removed by the driver.
//
// Accelerator: KVM when it works, else TCG. The probe (once per lab, its
// result kept in qemu-state.json) opens /dev/kvm read-write, then boots the
// image's kernel in a throwaway VM with -accel kvm -cpu host, no disk and
// panic=-1 -no-reboot: KVM counts as working when that kernel gets all the
// way to its "VFS: Unable to mount root fs" panic and QEMU exits within 15 s.
// Otherwise (no /dev/kvm, no permission, or a KVM that accepts -cpu host but
// cannot run a guest, as in some nested setups) the VMs use -accel tcg
// -cpu max. The result is also kept in ~/.cache/calclab/accel-probe.json
// until the machine reboots, so later labs skip the probe.
// CALCLAB_QEMU_ACCEL=kvm|tcg (or Driver.Accel) skips the probe.
package qemu

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/proc"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/cloudinit"
	"github.com/calclab/calclab/provision/deploy"
	"github.com/calclab/calclab/provision/sshkeys"
)

// Driver runs nodes as QEMU VMs. Its state lives under Dir.
type Driver struct {
	// Dir is the lab's state directory (.lab).
	Dir string
	// Image is the base qcow2 (with its .vmlinuz and .initrd next to it);
	// "" finds it per node with FindImage.
	Image string
	// QEMU, QEMUImg and VDESwitch are the programs to run (default:
	// qemu-system-x86_64, qemu-img, vde_switch from PATH).
	QEMU, QEMUImg, VDESwitch string
	// Net is the internal switch backend: NetVDE, NetMcast, or "" for vde
	// when vde_switch is installed, else mcast.
	Net string
	// Accel is "kvm" or "tcg"; "" reads CALCLAB_QEMU_ACCEL, else probes.
	Accel string
	// BootTimeout bounds the wait from starting a VM until cloud-init has
	// finished in it (default 10 min under TCG, 3 min under KVM).
	BootTimeout time.Duration
	// SSHPortBase is the first host port tried for SSH: node i gets
	// SSHPortBase+i when free (default 2220).
	SSHPortBase int
	// StopTimeout is how long Down waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration

	driver.Unsupported // Plan
}

var _ driver.Driver = (*Driver)(nil)

// Info implements driver.Driver: QEMU nodes are VMs reached over SSH,
// with a serial console.
func (d *Driver) Info() driver.Info {
	return driver.Info{Name: "qemu", Remote: true, Console: true, ReadyTimeout: 3 * time.Minute}
}

type nodeState struct {
	PID    int    `json:"pid"`
	Dir    string `json:"dir"`
	Disk   string `json:"disk"`
	Image  Image  `json:"image"`
	MAC    string `json:"mac"`     // internal (lan) NIC
	NATMAC string `json:"nat_mac"` // user-mode NAT NIC
	IP     string `json:"ip"`
	// SSHPort and HTTPPort are host ports on 127.0.0.1 forwarded to the
	// guest's 22 and GuestPort (the node's calclab service).
	SSHPort   int       `json:"ssh_port"`
	HTTPPort  int       `json:"http_port"`
	GuestPort int       `json:"guest_port"`
	Accel     string    `json:"accel"`
	Started   time.Time `json:"started"`
	// UEFI is the firmware of a disk-boot image (no kernel beside it);
	// its NVRAM is efivars.fd in Dir.
	UEFI *UEFI `json:"uefi,omitempty"`
}

type state struct {
	Lab       string                `json:"lab"`
	Accel     string                `json:"accel,omitempty"`
	AccelWhy  string                `json:"accel_why,omitempty"`
	Net       string                `json:"net,omitempty"`
	Switch    *switchState          `json:"switch,omitempty"`
	McastPort int                   `json:"mcast_port,omitempty"`
	Nodes     map[string]*nodeState `json:"nodes"`
}

func (d *Driver) qemuBin() string    { return or(d.QEMU, "qemu-system-x86_64") }
func (d *Driver) qemuImgBin() string { return or(d.QEMUImg, "qemu-img") }
func (d *Driver) vdeBin() string     { return or(d.VDESwitch, "vde_switch") }

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func (d *Driver) switchDir() string       { return filepath.Join(d.Dir, "qemu") }
func (d *Driver) nodeDir(n string) string { return filepath.Join(d.Dir, n) }

func (d *Driver) state() driver.State[state] {
	return driver.StateFile[state](d.Dir, "qemu", "stop the qemu processes by hand")
}

func (d *Driver) load() (*state, error) {
	st, err := d.state().Load()
	if err != nil {
		return nil, err
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*nodeState{}
	}
	return st, nil
}

func (d *Driver) save(st *state) error { return d.state().Save(st) }

// procAlive reports whether pid is a live qemu (or vde_switch) of ours.
func procAlive(pid int, bin, mark string) bool { return proc.Alive(pid, bin, mark) }

func (d *Driver) vmAlive(ns *nodeState) bool {
	return ns != nil && procAlive(ns.PID, d.qemuBin(), ns.Disk)
}

// guestPort is the port a node's calclab service listens on inside its VM.
func guestPort(lab *spec.Lab, n spec.Node) int {
	if n.Role == spec.RoleMaster {
		return lab.Services.MasterPort
	}
	return lab.Services.SlavePort
}

// assignMACs gives every node a lan and a nat MAC, unique within the lab.
func assignMACs(lab *spec.Lab) (lan, nat map[string]string) {
	lan, nat = map[string]string{}, map[string]string{}
	used := map[string]bool{}
	pick := func(node, nic string) string {
		for salt := 0; ; salt++ {
			m := mac(lab.Name, node, nic, salt)
			if !used[m] {
				used[m] = true
				return m
			}
		}
	}
	for _, n := range lab.Nodes {
		lan[n.Name] = pick(n.Name, "lan")
	}
	for _, n := range lab.Nodes {
		nat[n.Name] = pick(n.Name, "nat")
	}
	return lan, nat
}

// Up implements driver.Driver: it boots every node whose VM is not running
// and returns once each VM runs (infra/lab then waits for SSH and
// cloud-init: lab.WaitBooted). VMs already running are left alone. When a
// node fails, the other VMs are left running for inspection (lab down
// removes them).
func (d *Driver) Up(ctx context.Context, lab *spec.Lab, progress driver.Progress) error {
	var pmu sync.Mutex
	report := func(s driver.Step) {
		pmu.Lock()
		defer pmu.Unlock()
		if progress != nil {
			progress(s)
		}
	}
	if d.Dir == "" {
		return errors.New("qemu driver: no state directory")
	}
	for _, bin := range []string{d.qemuBin(), d.qemuImgBin()} {
		if _, err := exec.LookPath(bin); err != nil {
			return fmt.Errorf("%s not found: install it (apt-get install qemu-system-x86 qemu-utils)", bin)
		}
	}
	st, err := d.load()
	if err != nil {
		return err
	}
	st.Lab = lab.Name
	_, authLine, err := sshkeys.EnsureKeyPair(driver.KeyDir(d.Dir))
	if err != nil {
		return fmt.Errorf("lab SSH key: %w", err)
	}
	hostKeys, err := sshkeys.OpenKnownHosts(driver.KnownHostsFile(d.Dir))
	if err != nil {
		return err
	}

	var start []spec.Node
	for _, n := range lab.Nodes {
		ns := st.Nodes[n.Name]
		if d.vmAlive(ns) {
			report(driver.Step{Node: n.Name, Step: "boot", Done: true, Hint: fmt.Sprintf("already running (pid %d, ssh 127.0.0.1:%d)", ns.PID, ns.SSHPort)})
			continue
		}
		start = append(start, n)
	}
	if len(start) > 0 {
		if err := d.ensureAccel(ctx, lab, st, report); err != nil {
			return err
		}
		if err := d.ensureSwitch(ctx, lab, st, report); err != nil {
			return err
		}
		if err := d.save(st); err != nil {
			return err
		}
	}

	taken := map[int]bool{}
	for _, n := range lab.Nodes {
		if ns := st.Nodes[n.Name]; ns != nil && d.vmAlive(ns) {
			taken[ns.SSHPort], taken[ns.HTTPPort] = true, true
		}
	}
	lanMAC, natMAC := assignMACs(lab)
	images := map[string]Image{}
	for _, n := range start {
		if err := d.startNode(ctx, lab, n, st, images, taken, lanMAC[n.Name], natMAC[n.Name], authLine, hostKeys, report); err != nil {
			_ = d.save(st)
			return err
		}
		if err := d.save(st); err != nil {
			return err
		}
	}
	return nil
}

// ensureAccel decides KVM or TCG once per lab.
func (d *Driver) ensureAccel(ctx context.Context, lab *spec.Lab, st *state, report func(driver.Step)) error {
	forced := or(d.Accel, os.Getenv("CALCLAB_QEMU_ACCEL"))
	switch forced {
	case "", "kvm", "tcg":
	default:
		return fmt.Errorf("accelerator %q: want kvm or tcg", forced)
	}
	t0 := time.Now()
	switch {
	case forced != "":
		st.Accel, st.AccelWhy = forced, "forced (CALCLAB_QEMU_ACCEL / Driver.Accel)"
	case st.Accel != "":
		// probed before for this lab
	default:
		report(driver.Step{Node: "qemu", Step: "accel"})
		img, err := FindImage(ctx, lab.File, or(d.Image, lab.Nodes[0].Image))
		if err != nil {
			report(driver.Step{Node: "qemu", Step: "accel", Err: err, Elapsed: time.Since(t0)})
			return err
		}
		st.Accel, st.AccelWhy = cachedProbeAccel(ctx, d.qemuBin(), img, d.switchDir())
	}
	report(driver.Step{Node: "qemu", Step: "accel", Done: true, Elapsed: time.Since(t0), Hint: st.Accel + ": " + st.AccelWhy})
	return nil
}

// ensureSwitch starts the internal switch unless it runs.
func (d *Driver) ensureSwitch(ctx context.Context, lab *spec.Lab, st *state, report func(driver.Step)) error {
	t0 := time.Now()
	if st.Net == "" || !d.anyAlive(st) {
		st.Net = d.Net
		if st.Net == "" {
			st.Net = NetMcast
			if _, err := exec.LookPath(d.vdeBin()); err == nil {
				st.Net = NetVDE
			}
		}
	}
	switch st.Net {
	case NetMcast:
		st.McastPort = mcastPort(lab.Name)
		hint := fmt.Sprintf("multicast 230.0.0.1:%d on loopback", st.McastPort)
		if d.Net == "" {
			hint += " (vde_switch not found: apt-get install vde2)"
		}
		report(driver.Step{Node: "switch", Step: "start", Done: true, Elapsed: time.Since(t0), Hint: hint})
		return nil
	case NetVDE:
	default:
		return fmt.Errorf("internal network %q: want %s or %s", st.Net, NetVDE, NetMcast)
	}
	if st.Switch.alive(d.vdeBin()) {
		report(driver.Step{Node: "switch", Step: "start", Done: true, Elapsed: time.Since(t0), Hint: fmt.Sprintf("already running (pid %d)", st.Switch.PID)})
		return nil
	}
	if d.anyAlive(st) {
		return fmt.Errorf("the lab's switch (vde_switch) is gone while VMs still run: run lab down, then lab up")
	}
	report(driver.Step{Node: "switch", Step: "start"})
	sw, err := startSwitch(ctx, d.vdeBin(), d.switchDir(), lab.Name, len(lab.Nodes)+4)
	if err != nil {
		report(driver.Step{Node: "switch", Step: "start", Err: err, Elapsed: time.Since(t0)})
		return fmt.Errorf("switch: %w", err)
	}
	st.Switch = sw
	report(driver.Step{Node: "switch", Step: "start", Done: true, Elapsed: time.Since(t0), Hint: fmt.Sprintf("vde_switch pid %d, %s", sw.PID, sw.Sock)})
	return nil
}

func (d *Driver) anyAlive(st *state) bool {
	for _, ns := range st.Nodes {
		if d.vmAlive(ns) {
			return true
		}
	}
	return false
}

// stepTimer reports one step of one node.
type stepTimer struct {
	report func(driver.Step)
	node   string
	step   string
	t0     time.Time
	hint   string
}

func (d *Driver) begin(report func(driver.Step), node, step, hint string) *stepTimer {
	report(driver.Step{Node: node, Step: step})
	return &stepTimer{report: report, node: node, step: step, t0: time.Now(), hint: hint}
}

func (s *stepTimer) done(hint string) {
	s.report(driver.Step{Node: s.node, Step: s.step, Done: true, Elapsed: time.Since(s.t0), Hint: hint})
}

// fail reports the step's failure and returns an error naming the node,
// the step and where to look.
func (s *stepTimer) fail(err error) error {
	s.report(driver.Step{Node: s.node, Step: s.step, Err: err, Elapsed: time.Since(s.t0), Hint: s.hint})
	if s.hint != "" {
		return fmt.Errorf("node %s: %s: %w (see %s)", s.node, s.step, err, s.hint)
	}
	return fmt.Errorf("node %s: %s: %w", s.node, s.step, err)
}

func (d *Driver) startNode(ctx context.Context, lab *spec.Lab, n spec.Node, st *state, images map[string]Image, taken map[int]bool, lanMAC, natMAC, authLine string, hostKeys *sshkeys.KnownHosts, report func(driver.Step)) error {
	dir, err := filepath.Abs(d.nodeDir(n.Name))
	if err != nil {
		return err
	}
	console := filepath.Join(dir, "console.log")
	qlog := filepath.Join(dir, "qemu.log")
	old := st.Nodes[n.Name]

	// image: a qcow2 overlay on the base (kept when the VM merely stopped)
	s := d.begin(report, n.Name, "image", "")
	name := or(d.Image, n.Image)
	img, ok := images[name]
	if !ok {
		if img, err = FindImage(ctx, lab.File, name); err != nil {
			return s.fail(err)
		}
		images[name] = img
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return s.fail(err)
	}
	disk := filepath.Join(dir, "disk.qcow2")
	ns := &nodeState{Dir: dir, Disk: disk, Image: img, MAC: lanMAC, NATMAC: natMAC, IP: n.IP, GuestPort: guestPort(lab, n), Accel: st.Accel}
	reuse := old != nil && old.Image == img && old.MAC == lanMAC && old.IP == n.IP
	if _, err := os.Stat(disk); err != nil {
		reuse = false
	}
	if reuse {
		s.done("disk kept from the last boot")
	} else {
		for _, f := range []string{disk, console, qlog, filepath.Join(dir, "seed.iso")} {
			_ = os.Remove(f)
		}
		if err := createOverlay(ctx, d.qemuImgBin(), img.Disk, disk, n.Disk); err != nil {
			return s.fail(err)
		}
		s.done(fmt.Sprintf("%d GiB overlay on %s", n.Disk, filepath.Base(img.Disk)))
	}

	// seed: the cloud-init NoCloud ISO
	s = d.begin(report, n.Name, "seed", "")
	prefix, err := netip.ParsePrefix(lab.Network.CIDR)
	if err != nil {
		return s.fail(err)
	}
	ip, err := netip.ParseAddr(n.IP)
	if err != nil {
		return s.fail(err)
	}
	cfg := cloudinit.Config{
		Hostname:       n.Name,
		User:           lab.SSHUser,
		AuthorizedKeys: []string{authLine},
		Interfaces: []cloudinit.Interface{
			{MAC: natMAC, DHCP: true},
			// No gateway on the internal network: the default route is
			// the NAT NIC's (nothing answers at network.gateway here).
			{MAC: lanMAC, Address: netip.PrefixFrom(ip, prefix.Bits())},
		},
	}
	cfg.InstanceID = instanceID(lab.Name, cfg)
	seed := filepath.Join(dir, "seed.iso")
	if err := cloudinit.WriteISO(seed, cfg); err != nil {
		return s.fail(err)
	}
	s.done(cfg.InstanceID)

	// boot: start QEMU (daemonized); host ports picked now
	s = d.begin(report, n.Name, "boot", console)
	idx := slices.IndexFunc(lab.Nodes, func(x spec.Node) bool { return x.Name == n.Name })
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		wantSSH, wantHTTP := or0(d.SSHPortBase, 2220)+idx, n.LocalPort
		if n.Role == spec.RoleMaster {
			wantHTTP = lab.Services.MasterPort
		}
		if old != nil && attempt == 0 {
			wantSSH, wantHTTP = old.SSHPort, old.HTTPPort
		}
		if attempt > 0 {
			wantSSH, wantHTTP = 0, 0
		}
		if ns.SSHPort, err = pickPort(wantSSH, taken); err != nil {
			return s.fail(err)
		}
		if ns.HTTPPort, err = pickPort(wantHTTP, taken); err != nil {
			return s.fail(err)
		}
		// A new disk has new host keys, and another port may have
		// belonged to another VM: forget what was trusted there.
		if !reuse || old.SSHPort != ns.SSHPort {
			if err := hostKeys.Forget(net.JoinHostPort("127.0.0.1", strconv.Itoa(ns.SSHPort))); err != nil {
				return s.fail(err)
			}
		}
		lastErr = d.launch(ctx, lab, n, st, ns, seed, console, qlog)
		if lastErr == nil {
			break
		}
		if !strings.Contains(lastErr.Error(), "host forwarding") {
			break
		}
	}
	if lastErr != nil {
		return s.fail(lastErr)
	}
	st.Nodes[n.Name] = ns
	hint := fmt.Sprintf("pid %d, %s, ssh 127.0.0.1:%d", ns.PID, st.Accel, ns.SSHPort)
	if n.Role == spec.RoleMaster {
		hint += fmt.Sprintf(", http 127.0.0.1:%d", ns.HTTPPort)
	}
	s.done(hint)
	return nil
}

func or0(v, def int) int {
	if v != 0 {
		return v
	}
	return def
}

// instanceID names this instance of a node; it changes with the node's
// seed so cloud-init applies a changed configuration.
func instanceID(lab string, c cloudinit.Config) string {
	data, _ := json.Marshal(c)
	h := sha256.Sum256(data)
	return fmt.Sprintf("%s-%s-%x", lab, c.Hostname, h[:4])
}

// KernelArgs is the kernel command line of every VM.
// net.ifnames=0 keeps the kernel's names: eth0 is the NAT NIC, eth1 the
// internal one (the network-config matches by MAC and names them so too).
const KernelArgs = "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 panic=-1 mitigations=off"

// qemuArgs is the command line of a node's VM.
func (d *Driver) qemuArgs(lab *spec.Lab, n spec.Node, st *state, ns *nodeState, seed, console string) []string {
	args := []string{
		"-name", fmt.Sprintf("%s-%s,process=qemu-%s-%s", lab.Name, n.Name, lab.Name, n.Name),
		"-nodefaults", "-no-user-config",
	}
	if ns.UEFI != nil {
		args = append(args, "-machine", UEFIMachine)
		args = append(args, ns.UEFI.Args(filepath.Join(ns.Dir, "efivars.fd"))...)
	} else {
		args = append(args, "-machine", "q35")
	}
	if st.Accel == "kvm" {
		args = append(args, "-accel", "kvm", "-cpu", "host")
	} else {
		args = append(args, "-accel", "tcg", "-cpu", "max")
	}
	hostfwd := fmt.Sprintf("hostfwd=tcp:127.0.0.1:%d-:22,hostfwd=tcp:127.0.0.1:%d-:%d", ns.SSHPort, ns.HTTPPort, ns.GuestPort)
	var lan string
	if st.Net == NetVDE {
		lan = "vde,id=lan,sock=" + st.Switch.Sock
	} else {
		lan = fmt.Sprintf("socket,id=lan,mcast=230.0.0.1:%d,localaddr=127.0.0.1", st.McastPort)
	}
	args = append(args,
		"-m", strconv.Itoa(n.Memory), "-smp", strconv.Itoa(n.CPUs),
		"-display", "none", "-vga", "none",
		"-chardev", "file,id=console,path="+console+",append=on",
		"-serial", "chardev:console",
	)
	if ns.Image.Kernel != "" {
		args = append(args, "-kernel", ns.Image.Kernel, "-initrd", ns.Image.Initrd, "-append", KernelArgs)
	}
	// Without a kernel the firmware (UEFI, Secure Boot) boots the disk's
	// own bootloader (e.g. an Ubuntu cloud image): the first virtio disk.
	args = append(args,
		"-drive", "file="+ns.Disk+",if=virtio,format=qcow2,discard=unmap",
		"-drive", "file="+seed+",if=virtio,format=raw,readonly=on",
		"-netdev", "user,id=nat,restrict=on,"+hostfwd,
		"-device", "virtio-net-pci,netdev=nat,mac="+ns.NATMAC,
		"-netdev", lan,
		"-device", "virtio-net-pci,netdev=lan,mac="+ns.MAC,
		"-device", "virtio-rng-pci",
		"-pidfile", filepath.Join(ns.Dir, "qemu.pid"),
		"-daemonize",
	)
	return args
}

// launch starts the VM daemonized; QEMU returns once the VM runs (or
// failed to start, with the reason on its stderr, kept in qemu.log).
func (d *Driver) launch(ctx context.Context, lab *spec.Lab, n spec.Node, st *state, ns *nodeState, seed, console, qlog string) error {
	pidfile := filepath.Join(ns.Dir, "qemu.pid")
	_ = os.Remove(pidfile)
	logf, err := os.OpenFile(qlog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	ns.UEFI = nil
	if ns.Image.Kernel == "" {
		u, err := FindUEFI()
		if err != nil {
			return err
		}
		if err := u.CopyVars(filepath.Join(ns.Dir, "efivars.fd")); err != nil {
			return err
		}
		ns.UEFI = &u
	}
	args := d.qemuArgs(lab, n, st, ns, seed, console)
	fmt.Fprintf(logf, "=== %s: %s %s\n", time.Now().UTC().Format(time.RFC3339), d.qemuBin(), strings.Join(args, " "))
	pos, _ := logf.Seek(0, io.SeekEnd)
	cmd := exec.CommandContext(ctx, d.qemuBin(), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = ns.Dir
	proc.Detach(cmd)
	ns.Started = time.Now()
	if err := cmd.Run(); err != nil {
		msg := readFrom(qlog, pos)
		return fmt.Errorf("%s: %v: %s", filepath.Base(d.qemuBin()), err, strings.TrimSpace(msg))
	}
	data, err := os.ReadFile(pidfile)
	if err != nil {
		return fmt.Errorf("qemu started but wrote no pid file: %w", err)
	}
	ns.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
	if !d.vmAlive(ns) {
		return fmt.Errorf("qemu exited right after starting: %s", strings.TrimSpace(readFrom(qlog, pos)))
	}
	return nil
}

func readFrom(path string, pos int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	_, _ = f.Seek(pos, io.SeekStart)
	data, _ := io.ReadAll(io.LimitReader(f, 8<<10))
	return string(data)
}

func (d *Driver) bootTimeout(accel string) time.Duration {
	if d.BootTimeout > 0 {
		return d.BootTimeout
	}
	if accel == "kvm" {
		return 3 * time.Minute
	}
	return 10 * time.Minute
}

// Nodes implements driver.Driver. A node's URL is its service port
// forwarded to 127.0.0.1 (the master's is services.master_port when that
// was free).
func (d *Driver) Nodes(_ context.Context, lab *spec.Lab) ([]driver.Node, error) {
	st, err := d.load()
	if err != nil {
		return nil, err
	}
	out := make([]driver.Node, 0, len(lab.Nodes))
	for _, n := range lab.Nodes {
		dn := driver.Node{Name: n.Name, Role: n.Role, Console: filepath.Join(d.nodeDir(n.Name), "console.log")}
		if ns := st.Nodes[n.Name]; ns != nil {
			dn.URL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ns.HTTPPort))
			dn.Console = filepath.Join(ns.Dir, "console.log")
			dn.Started, dn.BootTimeout = ns.Started, d.bootTimeout(ns.Accel)
			if d.vmAlive(ns) {
				dn.PID, dn.Running = ns.PID, true
			}
		}
		out = append(out, dn)
	}
	return out, nil
}

// Down implements driver.Driver: it stops every VM and the switch and
// removes the nodes' directories, the state, the lab's SSH key and
// known_hosts. The cached base image stays.
func (d *Driver) Down(_ context.Context, lab *spec.Lab) error {
	st, err := d.load()
	if err != nil {
		return err
	}
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var errs []error
	dirs := map[string]bool{}
	for _, n := range lab.Nodes {
		dirs[d.nodeDir(n.Name)] = true
	}
	for _, ns := range st.Nodes {
		dirs[ns.Dir] = true
	}
	// VMs: those in the state, and any whose pid file outlived the state.
	for dir := range dirs {
		ns := &nodeState{Dir: dir, Disk: filepath.Join(dir, "disk.qcow2")}
		if data, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
			ns.PID, _ = strconv.Atoi(strings.TrimSpace(string(data)))
			errs = append(errs, proc.Stop(ns.PID, d.qemuBin(), ns.Disk, timeout))
		}
	}
	for _, ns := range st.Nodes {
		errs = append(errs, proc.Stop(ns.PID, d.qemuBin(), ns.Disk, timeout))
	}
	if st.Switch != nil {
		errs = append(errs, proc.Stop(st.Switch.PID, d.vdeBin(), st.Switch.Sock, timeout))
	} else if data, err := os.ReadFile(filepath.Join(d.switchDir(), "switch.pid")); err == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		errs = append(errs, proc.Stop(pid, d.vdeBin(), d.switchDir(), timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for dir := range dirs {
		errs = append(errs, os.RemoveAll(dir))
	}
	if st.Switch != nil && st.Switch.Own != "" {
		errs = append(errs, os.RemoveAll(st.Switch.Own))
	}
	for _, p := range []string{d.switchDir(), driver.KeyDir(d.Dir)} {
		errs = append(errs, os.RemoveAll(p))
	}
	if err := os.Remove(driver.KnownHostsFile(d.Dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	errs = append(errs, d.state().Remove())
	// .lab itself only when nothing else lives there.
	_ = os.Remove(d.Dir)
	return errors.Join(errs...)
}

// Logs implements driver.Driver: the journal of the node's calclab unit,
// read over SSH (deploy.Journal).
func (d *Driver) Logs(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error {
	n, ok := lab.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in %s (nodes: %s)", node, lab.File, strings.Join(lab.NodeNames(), ", "))
	}
	t, err := d.SSHTarget(lab, node)
	if err != nil {
		return err
	}
	return deploy.Journal(ctx, t, n.Role, follow, w)
}

// Console implements driver.Driver: the node's serial console (kernel,
// systemd and cloud-init output), a file QEMU writes.
func (d *Driver) Console(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error {
	return driver.CopyLog(ctx, lab, node, filepath.Join(d.nodeDir(node), "console.log"), "console log", follow, w)
}

// SSHTarget implements driver.Driver: the node's SSH port forwarded to
// 127.0.0.1, the lab's ssh_user, key and known_hosts.
func (d *Driver) SSHTarget(lab *spec.Lab, node string) (sshkeys.Target, error) {
	if _, ok := lab.Node(node); !ok {
		return sshkeys.Target{}, fmt.Errorf("no node %q in %s (nodes: %s)", node, lab.File, strings.Join(lab.NodeNames(), ", "))
	}
	st, err := d.load()
	if err != nil {
		return sshkeys.Target{}, err
	}
	ns := st.Nodes[node]
	if ns == nil || ns.SSHPort == 0 {
		return sshkeys.Target{}, fmt.Errorf("node %s has no VM (run lab up)", node)
	}
	keyDir, err := filepath.Abs(driver.KeyDir(d.Dir))
	if err != nil {
		return sshkeys.Target{}, err
	}
	kh, err := filepath.Abs(driver.KnownHostsFile(d.Dir))
	if err != nil {
		return sshkeys.Target{}, err
	}
	return sshkeys.Target{
		Node: node, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ns.SSHPort)), User: lab.SSHUser,
		KeyDir: keyDir, KnownHosts: kh,
	}, nil
}

// StopNode stops one node's VM (SIGTERM: QEMU exits at once, like pulling
// the plug; the journaling filesystem copes) and keeps
// its disk and state, so the next Up boots the same disk again.
func (d *Driver) StopNode(_ context.Context, _ *spec.Lab, node string) error {
	st, err := d.load()
	if err != nil {
		return err
	}
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	if ns := st.Nodes[node]; ns != nil {
		if err := proc.Stop(ns.PID, d.qemuBin(), ns.Disk, timeout); err != nil {
			return fmt.Errorf("node %s: stop: %w", node, err)
		}
	}
	return nil
}

// DeleteNode stops one node's VM and removes its files (overlay, seed,
// logs), leaving the switch and the other nodes alone (the resource model
// deletes nodes one at a time; Down removes what is shared). Calling it
// again does nothing.
func (d *Driver) DeleteNode(_ context.Context, _ *spec.Lab, node string) error {
	st, err := d.load()
	if err != nil {
		return err
	}
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dir := d.nodeDir(node)
	if ns := st.Nodes[node]; ns != nil {
		if err := proc.Stop(ns.PID, d.qemuBin(), ns.Disk, timeout); err != nil {
			return fmt.Errorf("node %s: stop: %w", node, err)
		}
		if ns.Dir != "" {
			dir = ns.Dir
		}
	}
	if data, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		if err := proc.Stop(pid, d.qemuBin(), filepath.Join(dir, "disk.qcow2"), timeout); err != nil {
			return fmt.Errorf("node %s: stop: %w", node, err)
		}
	}
	delete(st.Nodes, node)
	if err := d.save(st); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("node %s: remove files: %w", node, err)
	}
	return nil
}
