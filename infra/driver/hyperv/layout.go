// Package hyperv is the lab provider that runs every node as a Hyper-V
// Generation 2 VM, driven through Windows PowerShell: on this machine when
// lab runs on the Windows host, or over SSH on the host that lab.yaml's
// `hyperv:` block names. Every step is one script (see Steps) whose
// values are data (package ps); `lab plan --provider hyperv` writes the
// same scripts to files and runs nothing.
//
// Names and places on the host, all derived from lab.yaml:
//
//	switch            network.name (Internal), host address HostIP on "vEthernet (NAME)"
//	NAT               <lab>-nat for network.cidr (or an existing NAT that covers it)
//	VM                <lab>-<node>, Notes "calclab lab=<lab> node=<node>"
//	files             <hyperv.dir>\<lab>\base-<hash>.vhdx, <node>\disk.vhdx, <node>\seed.iso
//
// What Up created is recorded in <state dir>/hyperv-state.json; Down
// removes exactly that.
package hyperv

import (
	"net/netip"
	"strings"

	"github.com/calclab/calclab/infra/spec"
)

// MAC is a node's NIC address on the internal switch: Hyper-V's 00:15:5D
// prefix and three bytes of sha256(lab, node, "lan", 0), the same bytes the
// QEMU provider uses after its own prefix, so a node keeps its MAC across
// runs and the Vagrantfile can compute it too.
func MAC(lab, node string) string { return mac(lab, node, 0) }

func mac(lab, node string, salt int) string {
	return spec.NICMAC(spec.HyperVOUI, lab, node, "lan", salt)
}

// MACs gives every node of the lab its MAC, unique within the lab (a
// hash collision moves the later node to the next salt).
func MACs(lab *spec.Lab) map[string]string {
	out, used := map[string]string{}, map[string]bool{}
	for _, n := range lab.Nodes {
		for salt := 0; ; salt++ {
			m := mac(lab.Name, n.Name, salt)
			if !used[m] {
				used[m], out[n.Name] = true, m
				break
			}
		}
	}
	return out
}

// HyperVMAC writes a MAC the way Set-VMNetworkAdapter -StaticMacAddress
// takes it: twelve hex digits, no separators.
func HyperVMAC(m string) string { return strings.ToUpper(strings.ReplaceAll(m, ":", "")) }

// Layout is where a lab's things are on the Windows host.
type Layout struct {
	Lab *spec.Lab
	// ImageHash names the base VHDX after the image it came from.
	ImageHash string
}

// VMName is the Hyper-V name of a node's VM.
func (l Layout) VMName(node string) string { return l.Lab.Name + "-" + node }

// Notes marks a VM as this lab's.
func (l Layout) Notes(node string) string {
	return "calclab lab=" + l.Lab.Name + " node=" + node
}

// NatName is the NAT network lab creates when none covers the CIDR.
func (l Layout) NatName() string { return l.Lab.Name + "-nat" }

// Dir is the lab's folder on the host.
func (l Layout) Dir() string { return winJoin(l.Lab.HyperV.Dir, l.Lab.Name) }

// BaseVhdx is the base disk.
func (l Layout) BaseVhdx() string {
	h := l.ImageHash
	if h == "" {
		h = "image"
	}
	return winJoin(l.Dir(), "base-"+h+".vhdx")
}

// NodeDir holds a node's disk, seed and VM configuration.
func (l Layout) NodeDir(node string) string { return winJoin(l.Dir(), node) }

// DiskPath is a node's differencing disk.
func (l Layout) DiskPath(node string) string { return winJoin(l.NodeDir(node), "disk.vhdx") }

// SeedPath is a node's NoCloud seed ISO.
func (l Layout) SeedPath(node string) string { return winJoin(l.NodeDir(node), "seed.iso") }

// VMDir is the folder New-VM -Path makes for the VM's configuration.
func (l Layout) VMDir(node string) string { return winJoin(l.NodeDir(node), l.VMName(node)) }

// FirewallRule names the inbound rule for a node's published port.
func (l Layout) FirewallRule(node string) string { return "calclab " + l.Lab.Name + " " + node }

func winJoin(dir, name string) string { return strings.TrimRight(dir, `\`) + `\` + name }

// SFTPPath is a Windows path as Windows' OpenSSH SFTP server takes it:
// C:\ProgramData\x becomes /C:/ProgramData/x.
func SFTPPath(win string) string { return "/" + strings.ReplaceAll(win, `\`, "/") }

// Prefix is the lab network's prefix length.
func Prefix(lab *spec.Lab) int {
	p, err := netip.ParsePrefix(lab.Network.CIDR)
	if err != nil {
		return 0
	}
	return p.Bits()
}

// GuestPort is the port a node's calclab service listens on in its VM.
func GuestPort(lab *spec.Lab, n spec.Node) int {
	if n.Role == spec.RoleMaster {
		return lab.Services.MasterPort
	}
	return lab.Services.SlavePort
}
