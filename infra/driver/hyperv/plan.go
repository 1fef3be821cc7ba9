package hyperv

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/cloudinit"
)

// Plan is everything lab up --provider hyperv does, as data: the scripts
// in order, each node's seed, and the image conversion that runs on this
// machine first when the image is not a VHD(X) (or the host is remote).
type Plan struct {
	Layout Layout
	// Image is the image file on this machine (absolute).
	Image string
	// Convert is set when this machine converts Image to the base VHDX
	// with qemu-img before 05-image runs (remote host, or a qcow2 image).
	Convert bool
	// Remote is set when the scripts run on hyperv.host over SSH.
	Remote  bool
	Scripts []*ps.Script
	// Seeds are the nodes' NoCloud seeds, by node name.
	Seeds map[string]cloudinit.Config
	MACs  map[string]string
}

// NewPlan builds the plan of lab; authKey is the lab's SSH public key
// (authorized_keys line) that the seeds install.
func NewPlan(lab *spec.Lab, authKey string) (*Plan, error) {
	img := lab.HyperVImage()
	if !filepath.IsAbs(img) && !isWinAbs(img) && lab.File != "" {
		img = filepath.Join(filepath.Dir(lab.File), img)
	}
	if abs, err := filepath.Abs(img); err == nil && !isWinAbs(img) {
		img = abs
	}
	remote := lab.HyperV.Host != ""
	ext := strings.ToLower(filepath.Ext(img))
	pl := &Plan{
		Layout:  Layout{Lab: lab, ImageHash: imageHash(img)},
		Image:   img,
		Remote:  remote,
		Convert: remote || (ext != ".vhd" && ext != ".vhdx"),
		Seeds:   map[string]cloudinit.Config{},
		MACs:    MACs(lab),
	}
	source := img
	if pl.Convert {
		// This machine converts (and, remote, uploads) the image to the
		// base VHDX first; the script then finds it in place.
		source = pl.Layout.BaseVhdx()
	}
	pl.Scripts = append(pl.Scripts, PreflightScript())
	pl.Scripts = append(pl.Scripts, NetworkScripts(lab)...)
	pl.Scripts = append(pl.Scripts, ImageScript(pl.Layout, source))
	for i, n := range lab.Nodes {
		pl.Scripts = append(pl.Scripts, VMScript(pl.Layout, i, n, pl.MACs[n.Name]))
		cfg, err := Seed(lab, n, pl.MACs[n.Name], authKey)
		if err != nil {
			return nil, err
		}
		pl.Seeds[n.Name] = cfg
	}
	for i, n := range lab.Nodes {
		pl.Scripts = append(pl.Scripts, StartScript(pl.Layout, 6+len(lab.Nodes)+i, n))
	}
	if remote {
		pl.Scripts = append(pl.Scripts, PublishScript(6+2*len(lab.Nodes), pl.Layout.NatName(), Mappings(lab)))
	}
	return pl, nil
}

func isWinAbs(p string) bool {
	return len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// imageHash names the base VHDX after the image: its path, size and
// modification time, so a replaced image gets a new base.
func imageHash(path string) string {
	h := sha256.New()
	h.Write([]byte(path))
	if fi, err := os.Stat(path); err == nil {
		fmt.Fprintf(h, "\x00%d\x00%d", fi.Size(), fi.ModTime().UnixNano())
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:4])
}

// Seed is a node's NoCloud seed: the login user with the lab's key, and
// the static address on the NIC with the node's MAC, its default route
// through the host's address on the switch.
func Seed(lab *spec.Lab, n spec.Node, macAddr, authKey string) (cloudinit.Config, error) {
	prefix, err := netip.ParsePrefix(lab.Network.CIDR)
	if err != nil {
		return cloudinit.Config{}, err
	}
	ip, err := netip.ParseAddr(n.IP)
	if err != nil {
		return cloudinit.Config{}, err
	}
	cfg := cloudinit.Config{
		Hostname:       n.Name,
		User:           lab.SSHUser,
		AuthorizedKeys: []string{authKey},
		Interfaces: []cloudinit.Interface{{
			MAC: macAddr, Address: netip.PrefixFrom(ip, prefix.Bits()), Gateway: lab.HostIP(), Name: "eth0",
		}},
	}
	data, _ := json.Marshal(cfg)
	sum := sha256.Sum256(data)
	cfg.InstanceID = fmt.Sprintf("%s-%s-%x", lab.Name, n.Name, sum[:4])
	if err := cfg.Validate(); err != nil {
		return cloudinit.Config{}, fmt.Errorf("node %s: %w", n.Name, err)
	}
	return cfg, nil
}

// ConvertCommand is the qemu-img command line that makes the base VHDX
// from the image on this machine.
func ConvertCommand(src, dst string) []string {
	return []string{"qemu-img", "convert", "-O", "vhdx", "-o", "subformat=dynamic", src, dst}
}

// Print writes the plan as text: what happens on this machine, then every
// script in full.
func (pl *Plan) Print(w io.Writer) error {
	lab := pl.Layout.Lab
	where := "this machine (Windows PowerShell, elevated)"
	if pl.Remote {
		where = fmt.Sprintf("%s@%s:%d over SSH", lab.HyperV.User, lab.HyperV.Host, lab.HyperV.Port)
	}
	fmt.Fprintf(w, "# lab %s on Hyper-V at %s: %d nodes, switch %q, network %s, host address %s\n",
		lab.Name, where, len(lab.Nodes), lab.Network.Name, lab.Network.CIDR, lab.HostIP())
	if pl.Convert {
		fmt.Fprintf(w, "# on this machine first: %s\n", strings.Join(ConvertCommand(pl.Image, "base.vhdx"), " "))
		if pl.Remote {
			fmt.Fprintf(w, "#   then upload base.vhdx to %s and each node's seed.iso to its seed path (SFTP)\n", pl.Layout.BaseVhdx())
		} else {
			fmt.Fprintf(w, "#   as %s\n", pl.Layout.BaseVhdx())
		}
	}
	for _, n := range lab.Nodes {
		fmt.Fprintf(w, "# node %s: VM %s, %s, MAC %s, seed %s\n", n.Name, pl.Layout.VMName(n.Name), n.IP, pl.MACs[n.Name], pl.Layout.SeedPath(n.Name))
	}
	for _, s := range pl.Scripts {
		text, err := s.Render()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n# ---- %s.ps1 ----\n%s", s.Step, text)
	}
	return nil
}

// Write writes the plan to dir: NN-step.ps1 per step, network.ps1 (the
// switch, host address and NAT in one script), each node's seed.iso and
// network-config under <node>/, and README.txt saying the order.
func (pl *Plan) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var files []string
	write := func(name string, data []byte) error {
		files = append(files, name)
		return os.WriteFile(filepath.Join(dir, name), data, 0o644)
	}
	scripts := append(append([]*ps.Script(nil), pl.Scripts...), NetworkScript(pl.Layout.Lab))
	for _, s := range scripts {
		text, err := s.Render()
		if err != nil {
			return err
		}
		// Windows PowerShell 5.1 reads a .ps1 without a BOM as the ANSI
		// code page: the BOM keeps non-ASCII values intact.
		if err := write(s.Step+".ps1", append([]byte("\ufeff"), []byte(strings.ReplaceAll(text, "\n", "\r\n"))...)); err != nil {
			return err
		}
	}
	for _, n := range pl.Layout.Lab.Nodes {
		cfg := pl.Seeds[n.Name]
		if err := os.MkdirAll(filepath.Join(dir, n.Name), 0o755); err != nil {
			return err
		}
		if err := cloudinit.WriteISO(filepath.Join(dir, n.Name, "seed.iso"), cfg); err != nil {
			return err
		}
		nc, err := cloudinit.NetworkConfig(cfg)
		if err != nil {
			return err
		}
		if err := write(filepath.Join(n.Name, cloudinit.NetworkConfigFile), nc); err != nil {
			return err
		}
	}
	var readme strings.Builder
	if err := pl.Print(&readme); err != nil {
		return err
	}
	head, _, _ := strings.Cut(readme.String(), "\n# ---- ")
	head += "\n# Run, in an elevated Windows PowerShell on the host, in order:\n"
	for _, s := range pl.Scripts {
		head += "#   powershell -NoProfile -ExecutionPolicy Bypass -File " + s.Step + ".ps1\n"
	}
	head += "# (copy each <node>\\seed.iso to its seed path before the vm steps). network.ps1 is 01-04 in one script.\n"
	if err := write("README.txt", []byte(head)); err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("hyperv: empty plan")
	}
	return nil
}
