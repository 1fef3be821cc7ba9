package hyperv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv/ps"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/cloudinit"
	"github.com/calclab/calclab/provision/deploy"
	"github.com/calclab/calclab/provision/sshkeys"
)

// Driver runs a lab's nodes as Hyper-V VMs. Its record of what it created
// is <Dir>/hyperv-state.json; local copies of the seeds are under
// <Dir>/hyperv/.
type Driver struct {
	// Dir is the lab's state directory (.lab).
	Dir string
	// Exec runs the scripts; nil builds it from lab.yaml: powershell.exe
	// here, or over SSH to hyperv.host.
	Exec ps.Executor
	// Files puts files on the host; nil: local files, or SFTP to the host.
	Files HostFiles
	// QEMUImg converts images (default qemu-img from PATH).
	QEMUImg string
	// NodeSSH, when set, gives the address of a node's SSH server and its
	// login user instead of its IP on the switch, port 22, and ssh_user
	// (tests point it at a test sshd).
	NodeSSH func(node string) (addr, user string)
	// BootTimeout bounds the readiness wait per VM (default 10 min).
	BootTimeout time.Duration

	mu  sync.Mutex
	ssh *ps.SSH
}

var _ driver.Driver = (*Driver)(nil)

// JumpName is the Host name of a remote Windows host in ssh_config.
const JumpName = "hyperv-host"

// Info implements driver.Driver: Hyper-V nodes are VMs reached over SSH
// (through the host when it is remote); the plan is the scripts.
func (d *Driver) Info() driver.Info {
	return driver.Info{Name: "hyperv", Remote: true, Plan: true, ReadyTimeout: 3 * time.Minute}
}

type nodeRecord struct {
	VM        string `json:"vm"`
	VMCreated bool   `json:"vm_created"`
	Disk      string `json:"disk,omitempty"` // created differencing disk
	Seed      string `json:"seed,omitempty"` // uploaded seed ISO
	// Dir is the node's folder on the host (disk, seed, the VM's
	// configuration), lab's own: removed with the node.
	Dir     string    `json:"dir,omitempty"`
	IP      string    `json:"ip"`
	MAC     string    `json:"mac"`
	Started time.Time `json:"started"`
}

type record struct {
	Lab      string                 `json:"lab"`
	Host     string                 `json:"host,omitempty"`
	Switch   string                 `json:"switch,omitempty"`
	SwitchOK bool                   `json:"switch_created"`
	HostIP   string                 `json:"host_ip,omitempty"`
	HostIPOK bool                   `json:"host_ip_created"`
	NAT      string                 `json:"nat,omitempty"` // the NAT in use (created or reused)
	NATOK    bool                   `json:"nat_created"`
	Base     string                 `json:"base,omitempty"` // created or uploaded base VHDX
	Mappings []int                  `json:"mappings,omitempty"`
	Rules    []string               `json:"rules,omitempty"`
	Nodes    map[string]*nodeRecord `json:"nodes"`
}

func (d *Driver) state() driver.State[record] {
	return driver.StateFile[record](d.Dir, "hyperv", "remove the lab's VMs, switch and NAT on the host by hand (Remove-VM, Remove-VMSwitch, Remove-NetNat)")
}

func (d *Driver) load() (*record, error) {
	r, err := d.state().Load()
	if err != nil {
		return nil, err
	}
	if r.Nodes == nil {
		r.Nodes = map[string]*nodeRecord{}
	}
	return r, nil
}

func (d *Driver) localDir() string { return filepath.Join(d.Dir, "hyperv") }

// executor returns the script runner for lab, building it the first time.
func (d *Driver) executor(lab *spec.Lab) (ps.Executor, HostFiles, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Exec != nil {
		files := d.Files
		if files == nil {
			files = LocalFiles{}
		}
		return d.Exec, files, nil
	}
	h := lab.HyperV
	if h.Host == "" {
		d.Exec, d.Files = &ps.Shell{T: ps.Local{}, Program: "powershell.exe"}, LocalFiles{}
		return d.Exec, d.Files, nil
	}
	signer, _, err := sshkeys.EnsureKeyPair(driver.KeyDir(d.Dir))
	if err != nil {
		return nil, nil, fmt.Errorf("lab SSH key: %w", err)
	}
	kh, err := sshkeys.OpenKnownHosts(driver.KnownHostsFile(d.Dir))
	if err != nil {
		return nil, nil, err
	}
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	cfg, err := kh.ClientConfig(h.User, signer, addr)
	if err != nil {
		return nil, nil, err
	}
	d.ssh = &ps.SSH{Addr: addr, Config: cfg}
	d.Exec, d.Files = &ps.Shell{T: d.ssh}, &SFTPFiles{T: d.ssh}
	return d.Exec, d.Files, nil
}

// authKey is the lab's SSH public key, made on first use.
func (d *Driver) authKey() (string, error) {
	_, auth, err := sshkeys.EnsureKeyPair(driver.KeyDir(d.Dir))
	if err != nil {
		return "", fmt.Errorf("lab SSH key: %w", err)
	}
	return auth, nil
}

// result is every field a script's Send-Result may carry.
type result struct {
	Switch struct {
		Name    string `json:"name"`
		Created bool   `json:"created"`
	} `json:"switch"`
	HostIP struct {
		Created bool `json:"created"`
	} `json:"hostip"`
	NAT struct {
		Name    string `json:"name"`
		Created bool   `json:"created"`
		Reused  bool   `json:"reused"`
	} `json:"nat"`
	Image struct {
		Created bool `json:"created"`
	} `json:"image"`
	VM struct {
		Created bool   `json:"created"`
		Disk    bool   `json:"disk"`
		State   string `json:"state"`
	} `json:"vm"`
	Start struct {
		Started bool `json:"started"`
	} `json:"start"`
	Publish struct {
		Mappings []int    `json:"mappings"`
		Rules    []string `json:"rules"`
	} `json:"publish"`
	VMs []struct {
		Name    string `json:"name"`
		State   string `json:"state"`
		Notes   string `json:"notes"`
		UptimeS int    `json:"uptime_s"`
	} `json:"vms"`
}

func runScript(ctx context.Context, ex ps.Executor, s *ps.Script) (*result, error) {
	raw, err := ex.Run(ctx, s)
	if err != nil {
		return nil, Explain(err)
	}
	r := &result{}
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, r); err != nil {
			return nil, fmt.Errorf("%s: result %s: %w", s.Step, raw, err)
		}
	}
	return r, nil
}

// Up implements driver.Driver: it runs the plan's scripts in order, each
// of which converges (finds what exists before creating), uploads the base
// VHDX and the seeds, records what it created, and returns once every VM
// is started. The readiness wait and the deploy are infra/lab's.
func (d *Driver) Up(ctx context.Context, lab *spec.Lab, progress driver.Progress) error {
	if d.Dir == "" {
		return errors.New("hyperv driver: no state directory")
	}
	report := func(s driver.Step) {
		if progress != nil {
			progress(s)
		}
	}
	auth, err := d.authKey()
	if err != nil {
		return err
	}
	pl, err := NewPlan(lab, auth)
	if err != nil {
		return err
	}
	ex, files, err := d.executor(lab)
	if err != nil {
		return err
	}
	rec, err := d.load()
	if err != nil {
		return err
	}
	rec.Lab, rec.Host = lab.Name, lab.HyperV.Host
	save := func() error { return d.state().Save(rec) }
	l := pl.Layout
	step := func(node, name string, s *ps.Script, after func(*result) string) error {
		t0 := time.Now()
		report(driver.Step{Node: node, Step: name})
		r, err := runScript(ctx, ex, s)
		if err != nil {
			report(driver.Step{Node: node, Step: name, Err: err, Elapsed: time.Since(t0), Hint: s.Step + ".ps1 (lab plan --provider hyperv --out DIR shows it)"})
			return err
		}
		hint := after(r)
		if err := save(); err != nil {
			return err
		}
		report(driver.Step{Node: node, Step: name, Done: true, Elapsed: time.Since(t0), Hint: hint})
		return nil
	}
	made := func(created bool, what string) string {
		if created {
			return "created " + what
		}
		return "found " + what
	}
	scripts := map[string]*ps.Script{}
	for _, s := range pl.Scripts {
		scripts[s.Kind+"/"+s.String("VMName")] = s
	}
	host := "host"
	if err := step(host, "preflight", PreflightScript(), func(*result) string { return "elevated, Hyper-V running" }); err != nil {
		return err
	}
	net := NetworkScripts(lab)
	if err := step(host, "switch", net[0], func(r *result) string {
		rec.Switch = lab.Network.Name
		rec.SwitchOK = rec.SwitchOK || r.Switch.Created
		return made(r.Switch.Created, "Internal switch "+lab.Network.Name)
	}); err != nil {
		return err
	}
	if err := step(host, "address", net[1], func(r *result) string {
		rec.HostIP = lab.HostIP().String()
		rec.HostIPOK = rec.HostIPOK || r.HostIP.Created
		return made(r.HostIP.Created, rec.HostIP+" on vEthernet ("+lab.Network.Name+")")
	}); err != nil {
		return err
	}
	if err := step(host, "nat", net[2], func(r *result) string {
		rec.NAT = r.NAT.Name
		rec.NATOK = rec.NATOK || r.NAT.Created
		if r.NAT.Reused {
			return "reusing NAT " + r.NAT.Name + ", which covers " + lab.Network.CIDR
		}
		return made(r.NAT.Created, "NAT "+r.NAT.Name+" for "+lab.Network.CIDR)
	}); err != nil {
		return err
	}
	if pl.Convert && rec.Base == "" {
		if err := d.uploadBase(ctx, pl, files, report); err != nil {
			return err
		}
		rec.Base = l.BaseVhdx()
		if err := save(); err != nil {
			return err
		}
	}
	if err := step(host, "image", scripts["image/"], func(r *result) string {
		if r.Image.Created {
			rec.Base = l.BaseVhdx()
		}
		return l.BaseVhdx()
	}); err != nil {
		return err
	}
	for _, n := range lab.Nodes {
		nr := rec.Nodes[n.Name]
		if nr == nil {
			nr = &nodeRecord{}
			rec.Nodes[n.Name] = nr
		}
		nr.VM, nr.IP, nr.MAC, nr.Dir = l.VMName(n.Name), n.IP, pl.MACs[n.Name], l.NodeDir(n.Name)
		if err := d.uploadSeed(ctx, pl, n.Name, files); err != nil {
			report(driver.Step{Node: n.Name, Step: "seed", Err: err})
			return err
		}
		nr.Seed = l.SeedPath(n.Name)
		if err := save(); err != nil {
			return err
		}
		if err := step(n.Name, "vm", scripts["vm/"+l.VMName(n.Name)], func(r *result) string {
			nr.VMCreated = nr.VMCreated || r.VM.Created
			if r.VM.Disk {
				nr.Disk = l.DiskPath(n.Name)
			}
			return made(r.VM.Created, fmt.Sprintf("Gen2 VM %s (Secure Boot, MAC %s)", nr.VM, nr.MAC))
		}); err != nil {
			return err
		}
	}
	for _, n := range lab.Nodes {
		nr := rec.Nodes[n.Name]
		if err := step(n.Name, "start", scripts["start/"+l.VMName(n.Name)], func(r *result) string {
			if r.Start.Started || nr.Started.IsZero() {
				nr.Started = time.Now()
			}
			if r.Start.Started {
				return "started; " + n.IP + " on " + lab.Network.Name
			}
			return "already running"
		}); err != nil {
			return err
		}
	}
	if pl.Remote {
		// On the NAT in use, which may be one found and reused.
		pub := PublishScript(6+2*len(lab.Nodes), rec.NAT, Mappings(lab))
		if err := step(host, "publish", pub, func(r *result) string {
			rec.Mappings = appendNew(rec.Mappings, r.Publish.Mappings...)
			rec.Rules = appendNew(rec.Rules, r.Publish.Rules...)
			return fmt.Sprintf("service ports on %s (NAT static mappings, firewall rules)", lab.HyperV.Host)
		}); err != nil {
			return err
		}
	}
	return nil
}

// uploadBase converts the image on this machine and puts it on the host.
func (d *Driver) uploadBase(ctx context.Context, pl *Plan, files HostFiles, report func(driver.Step)) error {
	t0 := time.Now()
	report(driver.Step{Node: "host", Step: "convert"})
	local := filepath.Join(d.localDir(), "base-"+pl.Layout.ImageHash+".vhdx")
	if _, err := os.Stat(local); err != nil {
		if err := ConvertImage(ctx, d.QEMUImg, pl.Image, local); err != nil {
			report(driver.Step{Node: "host", Step: "convert", Err: err, Elapsed: time.Since(t0)})
			return err
		}
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := files.Put(ctx, pl.Layout.BaseVhdx(), f); err != nil {
		err = fmt.Errorf("upload %s to %s: %w", local, pl.Layout.BaseVhdx(), err)
		report(driver.Step{Node: "host", Step: "convert", Err: err, Elapsed: time.Since(t0)})
		return err
	}
	report(driver.Step{Node: "host", Step: "convert", Done: true, Elapsed: time.Since(t0), Hint: "dynamic VHDX, whole MiB: " + pl.Layout.BaseVhdx()})
	return nil
}

// uploadSeed writes a node's seed ISO here and puts it on the host.
func (d *Driver) uploadSeed(ctx context.Context, pl *Plan, node string, files HostFiles) error {
	local := filepath.Join(d.localDir(), node, "seed.iso")
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return err
	}
	if err := cloudinit.WriteISO(local, pl.Seeds[node]); err != nil {
		return err
	}
	data, err := os.ReadFile(local)
	if err != nil {
		return err
	}
	if err := files.Put(ctx, pl.Layout.SeedPath(node), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("node %s: upload seed to %s: %w", node, pl.Layout.SeedPath(node), err)
	}
	return nil
}

// appendNew appends the values of v that s lacks.
func appendNew[T comparable](s []T, v ...T) []T {
	for _, x := range v {
		if !slices.Contains(s, x) {
			s = append(s, x)
		}
	}
	return s
}

// URL is where this machine reaches a node's service: the host's
// published port when the host is remote, else the VM's address.
func URL(lab *spec.Lab, n spec.Node) string {
	if lab.HyperV.Host != "" {
		return "http://" + net.JoinHostPort(lab.HyperV.Host, strconv.Itoa(n.LocalPort))
	}
	return "http://" + net.JoinHostPort(n.IP, strconv.Itoa(GuestPort(lab, n)))
}

// Nodes implements driver.Driver: the VMs' states as Hyper-V reports them.
func (d *Driver) Nodes(ctx context.Context, lab *spec.Lab) ([]driver.Node, error) {
	rec, err := d.load()
	if err != nil {
		return nil, err
	}
	state := map[string]string{}
	uptime := map[string]time.Duration{}
	if len(rec.Nodes) > 0 {
		ex, _, err := d.executor(lab)
		if err != nil {
			return nil, err
		}
		r, err := runScript(ctx, ex, StatusScript(Layout{Lab: lab}))
		if err != nil {
			return nil, err
		}
		for _, vm := range r.VMs {
			if vm.Notes == (Layout{Lab: lab}).Notes(strings.TrimPrefix(vm.Name, lab.Name+"-")) {
				state[vm.Name] = vm.State
				uptime[vm.Name] = time.Duration(vm.UptimeS) * time.Second
			}
		}
	}
	l := Layout{Lab: lab}
	out := make([]driver.Node, 0, len(lab.Nodes))
	for _, n := range lab.Nodes {
		dn := driver.Node{Name: n.Name, Role: n.Role, URL: URL(lab, n), Running: state[l.VMName(n.Name)] == "Running", BootTimeout: d.BootTimeout}
		if nr := rec.Nodes[n.Name]; nr != nil {
			dn.Started = nr.Started
		}
		out = append(out, dn)
	}
	return out, nil
}

// SSHTarget implements driver.Driver: the VM's address on the switch,
// port 22, through the Windows host when it is remote.
func (d *Driver) SSHTarget(lab *spec.Lab, node string) (sshkeys.Target, error) {
	n, ok := lab.Node(node)
	if !ok {
		return sshkeys.Target{}, fmt.Errorf("no node %q in %s (nodes: %s)", node, lab.File, strings.Join(lab.NodeNames(), ", "))
	}
	rec, err := d.load()
	if err != nil {
		return sshkeys.Target{}, err
	}
	if rec.Nodes[node] == nil {
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
	addr, user := net.JoinHostPort(n.IP, "22"), lab.SSHUser
	if d.NodeSSH != nil {
		addr, user = d.NodeSSH(node)
	}
	t := sshkeys.Target{Node: node, Addr: addr, User: user, KeyDir: keyDir, KnownHosts: kh}
	if h := lab.HyperV; h.Host != "" {
		t.Jump = &sshkeys.Target{Node: JumpName, Addr: net.JoinHostPort(h.Host, strconv.Itoa(h.Port)), User: h.User, KeyDir: keyDir, KnownHosts: kh}
	}
	return t, nil
}

// Logs implements driver.Driver: the node's calclab journal over SSH.
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

// ServiceEnv implements driver.Driver: Hyper-V nodes are reached over SSH.
func (d *Driver) ServiceEnv(*spec.Lab, string) (string, map[string]string, error) {
	return "", nil, driver.ErrUnsupported
}

// Console implements driver.Driver: Hyper-V keeps no serial log of a
// VM (see vmconnect, or Hyper-V Manager's console).
func (d *Driver) Console(context.Context, *spec.Lab, string, bool, io.Writer) error {
	return fmt.Errorf("console of a Hyper-V VM: %w (open it in Hyper-V Manager or vmconnect localhost VMNAME)", driver.ErrUnsupported)
}

// Plan implements driver.Driver: the scripts Up would run, printed to w
// and, with outDir, written there (NN-step.ps1, network.ps1, each node's
// seed.iso and network-config). Nothing runs on any host.
func (d *Driver) Plan(_ context.Context, lab *spec.Lab, w io.Writer, outDir string) error {
	auth, err := d.authKey()
	if err != nil {
		return err
	}
	pl, err := NewPlan(lab, auth)
	if err != nil {
		return err
	}
	if outDir != "" {
		if err := pl.Write(outDir); err != nil {
			return err
		}
		fmt.Fprintf(w, "lab plan: wrote %d scripts, network.ps1 and %d seeds to %s (README.txt says the order)\n", len(pl.Scripts), len(lab.Nodes), outDir)
		return nil
	}
	return pl.Print(w)
}

// StopNode implements driver.Driver: a guest shutdown of the node's VM.
func (d *Driver) StopNode(ctx context.Context, lab *spec.Lab, node string) error {
	rec, err := d.load()
	if err != nil {
		return err
	}
	if rec.Nodes[node] == nil {
		return nil
	}
	ex, _, err := d.executor(lab)
	if err != nil {
		return err
	}
	_, err = runScript(ctx, ex, StopScript(Layout{Lab: lab}, node))
	return err
}

// DeleteNode implements driver.Driver: remove one node's VM and the files
// lab created for it; the switch, NAT and base disk stay.
func (d *Driver) DeleteNode(ctx context.Context, lab *spec.Lab, node string) error {
	rec, err := d.load()
	if err != nil {
		return err
	}
	if err := d.removeNode(ctx, lab, rec, node); err != nil {
		return err
	}
	return d.state().Save(rec)
}

func (d *Driver) removeNode(ctx context.Context, lab *spec.Lab, rec *record, node string) error {
	nr := rec.Nodes[node]
	if nr == nil {
		return nil
	}
	ex, _, err := d.executor(lab)
	if err != nil {
		return err
	}
	var files, dirs []string
	if nr.Disk != "" {
		files = append(files, nr.Disk)
	}
	if nr.Seed != "" {
		files = append(files, nr.Seed)
	}
	if nr.Dir != "" {
		dirs = append(dirs, nr.Dir)
	}
	if _, err := runScript(ctx, ex, VMRemoveScript(Layout{Lab: lab}, node, nr.VMCreated, files, dirs)); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	delete(rec.Nodes, node)
	_ = os.RemoveAll(filepath.Join(d.localDir(), node))
	return nil
}

// Down implements driver.Driver: it removes, in reverse order, exactly
// what Up recorded as created (port mappings and rules, VMs, their disks
// and seeds, the NAT, the host address, the switch, the base disk) and
// leaves what it found and reused. Without a record it does nothing.
func (d *Driver) Down(ctx context.Context, lab *spec.Lab) error {
	st := d.state()
	if _, err := os.Stat(st.Path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	rec, err := d.load()
	if err != nil {
		return err
	}
	ex, _, err := d.executor(lab)
	if err != nil {
		return err
	}
	l := Layout{Lab: lab}
	if len(rec.Mappings) > 0 || len(rec.Rules) > 0 {
		if _, err := runScript(ctx, ex, UnpublishScript(rec.NAT, rec.Mappings, rec.Rules)); err != nil {
			return err
		}
		rec.Mappings, rec.Rules = nil, nil
		if err := st.Save(rec); err != nil {
			return err
		}
	}
	for _, n := range lab.Nodes {
		if err := d.removeNode(ctx, lab, rec, n.Name); err != nil {
			return err
		}
		if err := st.Save(rec); err != nil {
			return err
		}
	}
	for name := range rec.Nodes { // nodes no longer in lab.yaml
		if err := d.removeNode(ctx, lab, rec, name); err != nil {
			return err
		}
	}
	var files []string
	if rec.Base != "" {
		files = append(files, rec.Base)
	}
	if _, err := runScript(ctx, ex, NetRemoveScript(l, rec.NATOK, rec.NAT, rec.HostIPOK, rec.SwitchOK, files)); err != nil {
		return err
	}
	d.mu.Lock()
	if d.ssh != nil {
		d.ssh.Close()
	}
	d.mu.Unlock()
	_ = os.RemoveAll(d.localDir())
	return st.Remove()
}
