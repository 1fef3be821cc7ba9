package resources

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/lab"
	"github.com/calclab/calclab/infra/spec"
)

// NodeArgs are the inputs of one node: its lab.yaml entry plus the lab-wide
// values its machine depends on. Every change replaces the node: a VM's
// image, CPUs, memory, disk, address and forwarded ports are fixed when it
// boots.
type NodeArgs struct {
	Lab      string `json:"lab" pulumi:"lab" tfsdk:"lab"`
	Provider string `json:"provider" pulumi:"provider" tfsdk:"provider"`
	StateDir string `json:"stateDir" pulumi:"stateDir" tfsdk:"state_dir"`
	// LabFile is lab.yaml's path: relative image paths are found from it.
	LabFile string `json:"labFile,omitempty" pulumi:"labFile,optional" tfsdk:"lab_file"`
	// Network, CIDR and Gateway come from the network resource (so the
	// node depends on it).
	Network string `json:"network" pulumi:"network" tfsdk:"network"`
	CIDR    string `json:"cidr" pulumi:"cidr" tfsdk:"cidr"`
	Gateway string `json:"gateway,omitempty" pulumi:"gateway,optional" tfsdk:"gateway"`
	SSHUser string `json:"sshUser" pulumi:"sshUser" tfsdk:"ssh_user"`

	Name     string `json:"name" pulumi:"name" tfsdk:"name"`
	Role     string `json:"role" pulumi:"role" tfsdk:"role"`
	IP       string `json:"ip" pulumi:"ip" tfsdk:"ip"`
	CPUs     int    `json:"cpus" pulumi:"cpus" tfsdk:"cpus"`
	MemoryMB int    `json:"memoryMb" pulumi:"memoryMb" tfsdk:"memory_mb"`
	DiskGB   int    `json:"diskGb" pulumi:"diskGb" tfsdk:"disk_gb"`
	Image    string `json:"image,omitempty" pulumi:"image,optional" tfsdk:"image"`
	// LocalHost and LocalPort are where a local node listens.
	LocalHost string `json:"localHost" pulumi:"localHost" tfsdk:"local_host"`
	LocalPort int    `json:"localPort" pulumi:"localPort" tfsdk:"local_port"`
	// ServicePort is the port the node's service listens on inside a VM
	// (master_port or slave_port), forwarded from the host.
	ServicePort int `json:"servicePort" pulumi:"servicePort" tfsdk:"service_port"`
	// HyperV is lab.yaml's hyperv: block as JSON (HyperVJSON), for the
	// hyperv provider: which Windows host, user, folder and image; empty
	// for the other providers.
	HyperV string `json:"hyperv,omitempty" pulumi:"hyperv,optional" tfsdk:"hyperv"`
}

// NodeState is a created node.
type NodeState struct {
	NodeArgs
	// Address is the node's static address on the lab network (VMs) or
	// its loopback host:port (local).
	Address string `json:"address" pulumi:"address" tfsdk:"address"`
	// URL is where this machine reaches the node's service.
	URL string `json:"url" pulumi:"url" tfsdk:"url"`
	// SSHHost and SSHPort reach the node's sshd from this machine (VMs;
	// empty and 0 for local processes).
	SSHHost string `json:"sshHost" pulumi:"sshHost" tfsdk:"ssh_host"`
	SSHPort int    `json:"sshPort" pulumi:"sshPort" tfsdk:"ssh_port"`
}

// ID is the node's stable identifier.
func (a NodeArgs) ID() string { return a.Lab + "/" + a.Name }

// Check validates the inputs.
func (a NodeArgs) Check() error {
	if err := checkCommon(a.Lab, a.Provider, a.StateDir); err != nil {
		return fmt.Errorf("node %s: %w", a.Name, err)
	}
	if err := checkHyperV(a.Provider, a.HyperV); err != nil {
		return fmt.Errorf("node %s: %w", a.Name, err)
	}
	l := a.lab()
	// A lab of this node and a stand-in for the other role, through the
	// same validation as lab.yaml.
	other := spec.Node{Name: "other-" + a.Role, Role: spec.RoleSlave, CPUs: 1, Memory: 1024, LocalPort: 1}
	if a.Role == spec.RoleSlave {
		other.Role = spec.RoleMaster
	}
	other.IP = otherHost(a.CIDR, a.IP, a.Gateway)
	if a.LocalPort == 1 {
		other.LocalPort = 2
	}
	l.Nodes = append(l.Nodes, other)
	if err := l.Validate(); err != nil {
		return fmt.Errorf("node %s: %w", a.Name, err)
	}
	if a.ServicePort < 1 || a.ServicePort > 65535 {
		return fmt.Errorf("node %s: servicePort: %d is not a TCP port", a.Name, a.ServicePort)
	}
	return nil
}

// lab is a lab spec holding just this node, for the driver.
func (a NodeArgs) lab() *spec.Lab {
	l := &spec.Lab{
		Name: a.Lab, Provider: a.Provider, File: a.LabFile, SSHUser: a.SSHUser,
		Network:  spec.Network{Name: a.Network, CIDR: a.CIDR, Gateway: a.Gateway},
		Services: spec.Services{LocalHost: a.LocalHost, MasterPort: a.ServicePort, SlavePort: a.ServicePort, Policy: "least-conn"},
		Nodes:    []spec.Node{a.node()},
		HyperV:   hyperVOf(a.HyperV),
	}
	return l
}

func (a NodeArgs) node() spec.Node {
	return spec.Node{Name: a.Name, Role: a.Role, IP: a.IP, CPUs: a.CPUs, Memory: a.MemoryMB, Disk: a.DiskGB, Image: a.Image, LocalPort: a.LocalPort}
}

func (a NodeArgs) localAddr() string {
	return net.JoinHostPort(a.LocalHost, strconv.Itoa(a.LocalPort))
}

// Create brings the node up: a local node gets its directory once its
// address is free; a VM boots until cloud-init has finished in it.
func (a NodeArgs) Create(ctx context.Context, log Log) (NodeState, error) {
	if err := a.Check(); err != nil {
		return NodeState{}, err
	}
	d, err := newDriver(a.Provider, a.StateDir, "")
	if err != nil {
		return NodeState{}, err
	}
	defer lock(a.StateDir)()
	if !remote(a.Provider) {
		ln, err := net.Listen("tcp", a.localAddr())
		if err != nil {
			return NodeState{}, fmt.Errorf("node %s: address %s is taken by another program (change local_port or stop it): %w", a.Name, a.localAddr(), err)
		}
		ln.Close()
		if err := os.MkdirAll(filepath.Join(a.StateDir, a.Name), 0o755); err != nil {
			return NodeState{}, fmt.Errorf("node %s: %w", a.Name, err)
		}
		log.printf("node %s: %s", a.Name, a.localAddr())
		return a.state(ctx, d)
	}
	progress := func(s driver.Step) {
		switch {
		case s.Err != nil:
			log.printf("%s %s failed after %s: %v %s", s.Node, s.Step, s.Elapsed.Round(1e6), s.Err, s.Hint)
		case s.Done:
			log.printf("%s %s ok %s %s", s.Node, s.Step, s.Elapsed.Round(1e6), s.Hint)
		}
	}
	if err := d.Up(ctx, a.lab(), progress); err != nil {
		return NodeState{}, fmt.Errorf("node %s: %w", a.Name, err)
	}
	// The drivers start VMs; the readiness wait (SSH, cloud-init) is the
	// lab's, shared by every VM provider.
	if err := lab.WaitBooted(ctx, d, a.lab(), a.Name, progress); err != nil {
		return NodeState{}, err
	}
	return a.state(ctx, d)
}

// state reads the node's outputs from the driver.
func (a NodeArgs) state(ctx context.Context, d driver.Driver) (NodeState, error) {
	s := NodeState{NodeArgs: a}
	if !remote(a.Provider) {
		s.Address = a.localAddr()
		s.URL = "http://" + a.localAddr()
		return s, nil
	}
	s.Address = a.IP
	nodes, err := d.Nodes(ctx, a.lab())
	if err != nil {
		return s, err
	}
	for _, n := range nodes {
		if n.Name == a.Name {
			s.URL = n.URL
		}
	}
	if !d.Info().Remote {
		return s, fmt.Errorf("node %s: the %s driver does not reach its nodes over SSH", a.Name, a.Provider)
	}
	t, err := d.SSHTarget(a.lab(), a.Name)
	if err != nil {
		return s, fmt.Errorf("node %s: %w", a.Name, err)
	}
	host, port, err := net.SplitHostPort(t.Addr)
	if err != nil {
		return s, fmt.Errorf("node %s: ssh address %q: %w", a.Name, t.Addr, err)
	}
	s.SSHHost = host
	s.SSHPort, _ = strconv.Atoi(port)
	return s, nil
}

// Read refreshes the node from the driver. A VM that no longer runs is
// gone (false), so a refresh drops it and the next up boots it again; a
// local node exists while its directory does.
func (s NodeState) Read(ctx context.Context) (NodeState, bool, error) {
	d, err := newDriver(s.Provider, s.StateDir, "")
	if err != nil {
		return s, false, err
	}
	defer lock(s.StateDir)()
	if !remote(s.Provider) {
		_, err := os.Stat(filepath.Join(s.StateDir, s.Name))
		if errors.Is(err, os.ErrNotExist) {
			return s, false, nil
		}
		return s, err == nil, err
	}
	nodes, err := d.Nodes(ctx, s.lab())
	if err != nil {
		return s, false, err
	}
	for _, n := range nodes {
		if n.Name == s.Name && n.Running {
			cur, err := s.NodeArgs.state(ctx, d)
			return cur, err == nil, err
		}
	}
	return s, false, nil
}

// Diff compares the state with new inputs: every change replaces the node.
func (s NodeState) Diff(a NodeArgs) Diff { return diffFields(s.NodeArgs, a) }

// Delete stops the node and removes its files, leaving the other nodes
// and the network alone. Deleting a node that is gone does nothing.
func (s NodeState) Delete(ctx context.Context, log Log) error {
	d, err := newDriver(s.Provider, s.StateDir, "")
	if err != nil {
		return err
	}
	defer lock(s.StateDir)()
	del, ok := d.(nodeDeleter)
	if !ok {
		return fmt.Errorf("node %s: the %s driver cannot delete one node: %w", s.Name, s.Provider, driver.ErrUnsupported)
	}
	if err := del.DeleteNode(ctx, s.lab(), s.Name); err != nil {
		return fmt.Errorf("node %s: %w", s.Name, err)
	}
	log.printf("node %s removed", s.Name)
	return nil
}
