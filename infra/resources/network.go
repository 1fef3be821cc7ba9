package resources

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/calclab/calclab/infra/spec"
)

// NetworkArgs are the inputs of the lab's network: lab.yaml's network
// section. Every change replaces the network (and so every node on it).
type NetworkArgs struct {
	Lab      string `json:"lab" pulumi:"lab" tfsdk:"lab"`
	Provider string `json:"provider" pulumi:"provider" tfsdk:"provider"`
	// StateDir is the lab's state directory (absolute), where the driver
	// keeps its files.
	StateDir string `json:"stateDir" pulumi:"stateDir" tfsdk:"state_dir"`
	Name     string `json:"name" pulumi:"name" tfsdk:"name"`
	CIDR     string `json:"cidr" pulumi:"cidr" tfsdk:"cidr"`
	Gateway  string `json:"gateway,omitempty" pulumi:"gateway,optional" tfsdk:"gateway"`
	// HyperV is lab.yaml's hyperv: block as JSON (HyperVJSON), for the
	// hyperv provider: which Windows host, user, folder and image; empty
	// for the other providers.
	HyperV string `json:"hyperv,omitempty" pulumi:"hyperv,optional" tfsdk:"hyperv"`
}

// NetworkState is a created network.
type NetworkState struct {
	NetworkArgs
	// Switch says what carries the network: "loopback 127.0.0.1" for
	// local processes, the switch of the VM provider otherwise.
	Switch string `json:"switch" pulumi:"switch" tfsdk:"switch"`
}

// ID is the network's stable identifier.
func (a NetworkArgs) ID() string { return a.Lab + "/network/" + a.Name }

// Check validates the inputs.
func (a NetworkArgs) Check() error {
	if err := checkCommon(a.Lab, a.Provider, a.StateDir); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := checkHyperV(a.Provider, a.HyperV); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if a.Name == "" {
		return fmt.Errorf("network: name: empty")
	}
	p, err := netip.ParsePrefix(a.CIDR)
	if err != nil || !p.Addr().Is4() || p != p.Masked() {
		return fmt.Errorf("network: cidr: %q is not an IPv4 network such as 192.168.56.0/24", a.CIDR)
	}
	if a.Gateway != "" {
		gw, err := netip.ParseAddr(a.Gateway)
		if err != nil || !p.Contains(gw) {
			return fmt.Errorf("network: gateway: %q is not an address inside %s", a.Gateway, p)
		}
	}
	return nil
}

func (a NetworkArgs) lab() *spec.Lab {
	return &spec.Lab{Name: a.Lab, Provider: a.Provider, Network: spec.Network{Name: a.Name, CIDR: a.CIDR, Gateway: a.Gateway}, HyperV: hyperVOf(a.HyperV)}
}

// Create records the network. The VM providers start their switch with
// the first node that boots on it (the driver owns the switch's life), so
// creating the network itself checks the inputs and the driver only.
func (a NetworkArgs) Create(_ context.Context, log Log) (NetworkState, error) {
	if err := a.Check(); err != nil {
		return NetworkState{}, err
	}
	if _, err := newDriver(a.Provider, a.StateDir, ""); err != nil {
		return NetworkState{}, err
	}
	s := NetworkState{NetworkArgs: a, Switch: a.switchName()}
	log.printf("network %s (%s) on %s", a.Name, a.CIDR, s.Switch)
	return s, nil
}

func (a NetworkArgs) switchName() string {
	if a.Provider == "local" {
		return "loopback (local processes bind 127.0.0.0/8)"
	}
	return a.Provider + " switch under " + filepath.Join(a.StateDir, a.Provider)
}

// Read returns the network as it is; it exists while its inputs are valid.
func (s NetworkState) Read(context.Context) (NetworkState, bool, error) {
	return s, s.Check() == nil, nil
}

// Diff compares the state with new inputs: any change replaces the network.
func (s NetworkState) Diff(a NetworkArgs) Diff { return diffFields(s.NetworkArgs, a) }

// Delete removes what the driver shares between the nodes (the switch,
// the lab's SSH key, known_hosts, its state file) once every node is gone:
// the engine deletes the nodes on the network first.
func (s NetworkState) Delete(ctx context.Context, log Log) error {
	d, err := newDriver(s.Provider, s.StateDir, "")
	if err != nil {
		return err
	}
	defer lock(s.StateDir)()
	// With no nodes in the lab, Down stops only what its state still
	// lists (nothing, after the nodes' deletes) and removes shared files.
	if err := d.Down(ctx, s.lab()); err != nil {
		return fmt.Errorf("network %s: %w", s.Name, err)
	}
	log.printf("network %s removed", s.Name)
	return nil
}
