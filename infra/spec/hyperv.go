package spec

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// HyperV is the `hyperv:` block of lab.yaml: where the hyperv provider
// finds Hyper-V. Without a host, lab runs PowerShell on this machine (the
// Windows host itself); with one, it runs it there over SSH and reaches
// the VMs through that host.
type HyperV struct {
	// Host is the Windows host's name or address ("" = this machine).
	Host string `yaml:"host"`
	// User logs in to Host over SSH; it must be an Administrator there.
	User string `yaml:"user"`
	// Port is Host's SSH port (default 22).
	Port int `yaml:"port"`
	// Dir is where the VHDX disks and seed ISOs live on the Windows host
	// (default C:\ProgramData\calclab); each lab gets a folder in it.
	Dir string `yaml:"dir"`
	// Image is the Ubuntu cloud image every VM's disk is made from, a path
	// on this machine (relative to lab.yaml): qcow2 (.img), VHD or VHDX.
	// A node's own image, when set, wins; all nodes must then agree.
	Image string `yaml:"image"`
}

// DefaultHyperVImage is HyperV.Image's default: Ubuntu 24.04's cloud image
// as its download is named, next to lab.yaml.
const DefaultHyperVImage = "noble-server-cloudimg-amd64.img"

// HyperVImage is the image the hyperv provider makes the VMs' disks from.
func (l *Lab) HyperVImage() string {
	for _, n := range l.Nodes {
		if n.Image != "" {
			return n.Image
		}
	}
	if l.HyperV.Image != "" {
		return l.HyperV.Image
	}
	return DefaultHyperVImage
}

// DefaultHyperVDir is HyperV.Dir's default.
const DefaultHyperVDir = `C:\ProgramData\calclab`

var (
	// Hyper-V switch names end up in "vEthernet (NAME)" and in -Name
	// parameters that take wildcards: letters, digits, space, . _ - only.
	switchName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-]$`)
	hostName   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	winUser    = regexp.MustCompile(`^[^\s"/\[\]:;|=,+*?<>@]{1,104}(@[A-Za-z0-9.-]+)?$`)
	winDir     = regexp.MustCompile(`^[A-Za-z]:\\[^"*?<>|:\x00-\x1f]*$`)
)

// HostIP is the Windows host's address on the internal switch: the
// network's gateway, or its first address when none is given. The VMs'
// default route points at it (New-NetNat does the rest).
func (l *Lab) HostIP() netip.Addr {
	if gw, err := netip.ParseAddr(l.Network.Gateway); err == nil {
		return gw
	}
	p, err := netip.ParsePrefix(l.Network.CIDR)
	if err != nil {
		return netip.Addr{}
	}
	return p.Masked().Addr().Next()
}

// validateHyperV fills the block's defaults and checks it when the
// provider is hyperv or a host is named.
func (l *Lab) validateHyperV() error {
	h := &l.HyperV
	if h.Dir == "" {
		h.Dir = DefaultHyperVDir
	}
	if h.Port == 0 {
		h.Port = 22
	}
	if l.Provider != "hyperv" && h.Host == "" {
		return nil
	}
	if h.Host != "" && !hostName.MatchString(h.Host) {
		if a, err := netip.ParseAddr(h.Host); err != nil || a.Zone() != "" {
			return l.fail("hyperv.host", "%q is not a host name or IP address of the Windows host", h.Host)
		}
	}
	if h.Host != "" && h.User == "" {
		return l.fail("hyperv.user", "is needed with hyperv.host: the Windows account (an Administrator there) lab logs in as over SSH")
	}
	if h.User != "" && !winUser.MatchString(h.User) {
		return l.fail("hyperv.user", "%q is not a Windows user name", h.User)
	}
	if h.Port < 1 || h.Port > 65535 {
		return l.fail("hyperv.port", "%d is not a TCP port; use 1 to 65535 (leave it out for 22)", h.Port)
	}
	if !winDir.MatchString(h.Dir) || strings.Contains(h.Dir, `\\`) || strings.Contains(h.Dir, `\.`) {
		return l.fail("hyperv.dir", "%q is not an absolute Windows folder such as %s", h.Dir, DefaultHyperVDir)
	}
	if l.Provider != "hyperv" {
		return nil
	}
	if !switchName.MatchString(l.Network.Name) {
		return l.fail("network.name", "%q cannot name a Hyper-V switch: use letters, digits, spaces, '.', '_' and '-' (2 to 64)", l.Network.Name)
	}
	host := l.HostIP()
	img := ""
	for i, n := range l.Nodes {
		if n.Image != "" && img != "" && n.Image != img {
			return l.fail(fmt.Sprintf("nodes[%d].image", i), "%q differs from %q: the hyperv provider makes every VM's disk from one image", n.Image, img)
		}
		if n.Image != "" {
			img = n.Image
		}
		if n.IP == host.String() {
			return l.fail(fmt.Sprintf("nodes[%d].ip", i), "%s is the Windows host's address on the switch (network.gateway, else the network's first address); give the node another", n.IP)
		}
		if n.Memory%2 != 0 {
			return l.fail(fmt.Sprintf("nodes[%d].memory_mb", i), "%d: Hyper-V wants memory in multiples of 2 MiB", n.Memory)
		}
	}
	return nil
}
