package terraform

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/calclab/calclab/infra/resources"
	"github.com/calclab/calclab/infra/spec"
)

// Vars is terraform.tfvars.json: lab.yaml as the variables of the
// configuration in calclab/ (and of hyperv-taliesins/, which takes the same
// file). The token is not in it: it goes to its own 0600 file.
type Vars struct {
	Lab      LabVars             `json:"lab"`
	Network  NetworkVars         `json:"network"`
	Services ServiceVars         `json:"services"`
	Nodes    map[string]NodeVars `json:"nodes"`
}

// LabVars is the lab as a whole.
type LabVars struct {
	Name      string `json:"name"`
	Provider  string `json:"provider"`
	StateDir  string `json:"state_dir"`
	BinDir    string `json:"bin_dir"`
	LabFile   string `json:"lab_file"`
	SSHUser   string `json:"ssh_user"`
	LocalHost string `json:"local_host"`
	// HyperV is lab.yaml's hyperv: block as JSON for the hyperv provider
	// ("" for the others), as the resources take it.
	HyperV string `json:"hyperv"`
}

// NetworkVars is the internal switch.
type NetworkVars struct {
	Name    string `json:"name"`
	CIDR    string `json:"cidr"`
	Gateway string `json:"gateway"`
}

// ServiceVars are the services' settings, the token left out.
type ServiceVars struct {
	MasterPort int    `json:"master_port"`
	SlavePort  int    `json:"slave_port"`
	Policy     string `json:"policy"`
}

// NodeVars is one node.
type NodeVars struct {
	Role      string `json:"role"`
	IP        string `json:"ip"`
	CPUs      int    `json:"cpus"`
	MemoryMB  int    `json:"memory_mb"`
	DiskGB    int    `json:"disk_gb"`
	Image     string `json:"image"`
	LocalPort int    `json:"local_port"`
	// HyperVMAC is the MAC the Hyper-V paths pin on the node's NIC
	// (00155Dxxxxxx, the form hv.mac and static_mac_address take).
	HyperVMAC string `json:"hyperv_mac"`
}

// VarsFor builds the variables of lab, whose driver state lives in
// stateDir and whose binaries are in binDir (both made absolute).
func VarsFor(lab *spec.Lab, stateDir, binDir string) (Vars, error) {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return Vars{}, fmt.Errorf("terraform vars: %w", err)
	}
	if binDir, err = filepath.Abs(binDir); err != nil {
		return Vars{}, fmt.Errorf("terraform vars: %w", err)
	}
	labFile := ""
	if lab.File != "" {
		if labFile, err = filepath.Abs(lab.File); err != nil {
			return Vars{}, fmt.Errorf("terraform vars: %w", err)
		}
	}
	v := Vars{
		Lab: LabVars{Name: lab.Name, Provider: lab.Provider, StateDir: stateDir, BinDir: binDir,
			LabFile: labFile, SSHUser: lab.SSHUser, LocalHost: lab.Services.LocalHost, HyperV: resources.HyperVJSON(lab)},
		Network:  NetworkVars{Name: lab.Network.Name, CIDR: lab.Network.CIDR, Gateway: lab.Network.Gateway},
		Services: ServiceVars{MasterPort: lab.Services.MasterPort, SlavePort: lab.Services.SlavePort, Policy: lab.Services.Policy},
		Nodes:    map[string]NodeVars{},
	}
	for _, n := range lab.Nodes {
		v.Nodes[n.Name] = NodeVars{Role: n.Role, IP: n.IP, CPUs: n.CPUs, MemoryMB: n.Memory, DiskGB: n.Disk,
			Image: n.Image, LocalPort: n.LocalPort, HyperVMAC: HyperVMAC(lab.Name, n.Name)}
	}
	return v, nil
}

// HyperVMAC is a node's MAC on a Hyper-V switch: Hyper-V's own prefix
// 00:15:5D and three bytes of sha256(lab, node, "lan", 0), the bytes
// qemu.MAC takes behind QEMU's prefix, so a node keeps its MAC (and the seed
// that matches it) across destroy and create. Written without separators,
// as Vagrant's hv.mac and taliesins' static_mac_address want it.
func HyperVMAC(lab, node string) string {
	h := sha256.Sum256([]byte(lab + "\x00" + node + "\x00lan\x000"))
	return strings.ToUpper(fmt.Sprintf("00155D%02x%02x%02x", h[0], h[1], h[2]))
}
