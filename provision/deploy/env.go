package deploy

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/calclab/calclab/infra/spec"
)

// EnvFor returns the CALCLAB_* environment of node n of lab, as the
// services read it (every flag has a CALCLAB_ twin): the node's
// spec.Settings placed on a VM (see VMPlacement), rendered as environment.
// CALCLAB_TOKEN is left out when the lab has no token.
func EnvFor(lab *spec.Lab, n spec.Node) (map[string]string, error) {
	p, err := VMPlacement(lab, n)
	if err != nil {
		return nil, err
	}
	s, err := lab.Settings(n, p)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	return s.Env(), nil
}

// VMPlacement is where a node's service sits on its own VM:
//
//	master: listens on 0.0.0.0:<master_port>, data in /var/lib/calclab,
//	        slave webhooks allowed from the network's cidr
//	slave:  listens on 0.0.0.0:<slave_port>, master at http://<master ip>:<master_port>,
//	        advertised as http://<own ip>:<slave_port>
func VMPlacement(lab *spec.Lab, n spec.Node) (spec.Placement, error) {
	s := lab.Services
	switch n.Role {
	case spec.RoleMaster:
		return spec.Placement{
			Listen:    "0.0.0.0:" + strconv.Itoa(s.MasterPort),
			DataDir:   DataDir,
			AllowCIDR: lab.Network.CIDR,
		}, nil
	case spec.RoleSlave:
		var master *spec.Node
		for i := range lab.Nodes {
			if lab.Nodes[i].Role == spec.RoleMaster {
				master = &lab.Nodes[i]
				break
			}
		}
		if master == nil {
			return spec.Placement{}, fmt.Errorf("deploy: the lab has no master for slave %s", n.Name)
		}
		mip, err := netip.ParseAddr(master.IP)
		if err != nil {
			return spec.Placement{}, fmt.Errorf("deploy: master %s: ip %q is not an IP address", master.Name, master.IP)
		}
		ip, err := netip.ParseAddr(n.IP)
		if err != nil {
			return spec.Placement{}, fmt.Errorf("deploy: slave %s: ip %q is not an IP address", n.Name, n.IP)
		}
		return spec.Placement{
			Listen:    "0.0.0.0:" + strconv.Itoa(s.SlavePort),
			MasterURL: "http://" + netip.AddrPortFrom(mip, uint16(s.MasterPort)).String(),
			Advertise: "http://" + netip.AddrPortFrom(ip, uint16(s.SlavePort)).String(),
		}, nil
	default:
		return spec.Placement{}, fmt.Errorf("deploy: node %s: role %q is not %s or %s", n.Name, n.Role, spec.RoleMaster, spec.RoleSlave)
	}
}

// PlanFor is the plan of node n of lab, with the role's binary taken from
// binDir (linux builds named master and slave).
func PlanFor(lab *spec.Lab, n spec.Node, binDir string) (Plan, error) {
	env, err := EnvFor(lab, n)
	if err != nil {
		return Plan{}, err
	}
	return Plan{
		Role:     n.Role,
		Binaries: map[string]string{n.Role: filepath.Join(binDir, n.Role)},
		Env:      env,
	}, nil
}

var (
	envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// Values are written double-quoted; systemd would treat these specially.
	envBad = "\"\\$`"
)

// EnvFile renders env as a systemd EnvironmentFile, sorted by name.
func EnvFile(env map[string]string) ([]byte, error) {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Written by calclab (provision/deploy); a deploy overwrites changes.\n")
	for _, k := range names {
		v := env[k]
		if !envName.MatchString(k) {
			return nil, fmt.Errorf("deploy: env: %q is not a variable name", k)
		}
		if strings.ContainsAny(v, envBad) || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			return nil, fmt.Errorf("deploy: env: %s: the value must not contain control characters or any of %s", k, envBad)
		}
		fmt.Fprintf(&b, "%s=\"%s\"\n", k, v)
	}
	return []byte(b.String()), nil
}
