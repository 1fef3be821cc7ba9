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
// services read it (every flag has a CALCLAB_ twin):
//
//	master: CALCLAB_LISTEN=0.0.0.0:<master_port>, CALCLAB_DATA_DIR=/var/lib/calclab,
//	        CALCLAB_ALLOW_CIDR=<network cidr>, CALCLAB_POLICY, CALCLAB_TOKEN
//	slave:  CALCLAB_LISTEN=0.0.0.0:<slave_port>, CALCLAB_MASTER=http://<master ip>:<master_port>,
//	        CALCLAB_ID=<node name>, CALCLAB_ADVERTISE=http://<own ip>:<slave_port>, CALCLAB_TOKEN
//
// CALCLAB_TOKEN is left out when the lab has no token.
func EnvFor(lab *spec.Lab, n spec.Node) (map[string]string, error) {
	s := lab.Services
	env := map[string]string{}
	if s.Token != "" {
		env["CALCLAB_TOKEN"] = s.Token
	}
	switch n.Role {
	case spec.RoleMaster:
		env["CALCLAB_LISTEN"] = "0.0.0.0:" + strconv.Itoa(s.MasterPort)
		env["CALCLAB_DATA_DIR"] = DataDir
		env["CALCLAB_ALLOW_CIDR"] = lab.Network.CIDR
		env["CALCLAB_POLICY"] = s.Policy
	case spec.RoleSlave:
		var master *spec.Node
		for i := range lab.Nodes {
			if lab.Nodes[i].Role == spec.RoleMaster {
				master = &lab.Nodes[i]
				break
			}
		}
		if master == nil {
			return nil, fmt.Errorf("deploy: the lab has no master for slave %s", n.Name)
		}
		mip, err := netip.ParseAddr(master.IP)
		if err != nil {
			return nil, fmt.Errorf("deploy: master %s: ip %q: %w", master.Name, master.IP, err)
		}
		ip, err := netip.ParseAddr(n.IP)
		if err != nil {
			return nil, fmt.Errorf("deploy: slave %s: ip %q: %w", n.Name, n.IP, err)
		}
		env["CALCLAB_LISTEN"] = "0.0.0.0:" + strconv.Itoa(s.SlavePort)
		env["CALCLAB_MASTER"] = "http://" + netip.AddrPortFrom(mip, uint16(s.MasterPort)).String()
		env["CALCLAB_ID"] = n.Name
		env["CALCLAB_ADVERTISE"] = "http://" + netip.AddrPortFrom(ip, uint16(s.SlavePort)).String()
	default:
		return nil, fmt.Errorf("deploy: node %s: role %q is not %s or %s", n.Name, n.Role, spec.RoleMaster, spec.RoleSlave)
	}
	return env, nil
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
