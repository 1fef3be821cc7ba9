package resources

import (
	"fmt"
	"path/filepath"

	"github.com/calclab/calclab/infra/spec"
)

// Plan is every resource of a lab, its inputs taken from lab.yaml: what an
// engine declares.
type Plan struct {
	Network     NetworkArgs
	Nodes       []NodeArgs
	Deployments []DeploymentArgs
}

// FromSpec builds the inputs of every resource of lab, whose driver keeps
// its files in stateDir and whose binaries are in binDir. The binaries are
// hashed here, so a rebuilt binary shows in the plan as an in-place update.
func FromSpec(lab *spec.Lab, stateDir, binDir string) (Plan, error) {
	stateDir, err := filepath.Abs(stateDir)
	if err != nil {
		return Plan{}, err
	}
	if binDir, err = filepath.Abs(binDir); err != nil {
		return Plan{}, err
	}
	labFile := ""
	if lab.File != "" {
		if labFile, err = filepath.Abs(lab.File); err != nil {
			return Plan{}, err
		}
	}
	p := Plan{Network: NetworkArgs{
		Lab: lab.Name, Provider: lab.Provider, StateDir: stateDir,
		Name: lab.Network.Name, CIDR: lab.Network.CIDR, Gateway: lab.Network.Gateway, HyperV: HyperVJSON(lab),
	}}
	hashes := map[string]string{}
	for _, role := range []string{spec.RoleMaster, spec.RoleSlave} {
		if hashes[role], err = BinaryHash(lab.Provider, binDir, role); err != nil {
			return Plan{}, err
		}
	}
	m := lab.Master()
	for _, n := range lab.Nodes {
		port := lab.Services.SlavePort
		if n.Role == spec.RoleMaster {
			port = lab.Services.MasterPort
		}
		p.Nodes = append(p.Nodes, NodeArgs{
			Lab: lab.Name, Provider: lab.Provider, StateDir: stateDir, LabFile: labFile,
			Network: lab.Network.Name, CIDR: lab.Network.CIDR, Gateway: lab.Network.Gateway, SSHUser: lab.SSHUser,
			Name: n.Name, Role: n.Role, IP: n.IP, CPUs: n.CPUs, MemoryMB: n.Memory, DiskGB: n.Disk, Image: n.Image,
			LocalHost: lab.Services.LocalHost, LocalPort: n.LocalPort, ServicePort: port, HyperV: HyperVJSON(lab),
		})
		d := DeploymentArgs{
			Lab: lab.Name, Provider: lab.Provider, StateDir: stateDir, BinDir: binDir,
			Node: n.Name, Role: n.Role, IP: n.IP, CIDR: lab.Network.CIDR, Network: lab.Network.Name, SSHUser: lab.SSHUser,
			LocalHost: lab.Services.LocalHost, LocalPort: n.LocalPort,
			MasterPort: lab.Services.MasterPort, SlavePort: lab.Services.SlavePort,
			Policy: lab.Services.Policy, Token: lab.Services.Token, BinaryHash: hashes[n.Role], HyperV: HyperVJSON(lab),
		}
		if n.Role == spec.RoleSlave {
			d.MasterNode, d.MasterIP, d.MasterLocalPort = m.Name, m.IP, m.LocalPort
		}
		p.Deployments = append(p.Deployments, d)
	}
	if err := p.Network.Check(); err != nil {
		return Plan{}, err
	}
	for i := range p.Nodes {
		if err := p.Nodes[i].Check(); err != nil {
			return Plan{}, err
		}
		if err := p.Deployments[i].Check(); err != nil {
			return Plan{}, err
		}
	}
	if len(p.Nodes) == 0 {
		return Plan{}, fmt.Errorf("lab %s has no nodes", lab.Name)
	}
	return p, nil
}
