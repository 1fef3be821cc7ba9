package spec

import (
	"fmt"
	"sort"

	"github.com/calclab/calclab/internal/envflag"
)

// Placement is what differs between providers for one node's service:
// where it listens, keeps its data, finds the master and is called back.
// Everything else a service is told comes from the lab spec, in Settings.
type Placement struct {
	Listen    string // host:port the service binds
	DataDir   string // master: directory of the task store
	AllowCIDR string // master: comma-separated networks slave webhooks may come from
	MasterURL string // slave: base URL of the master
	Advertise string // slave: URL the master calls it at; "" leaves the service's default
}

// Setting is one setting of a service, named by its command-line flag
// (every flag has a CALCLAB_ environment twin, internal/envflag).
type Setting struct {
	Flag  string // e.g. "listen"
	Value string
}

// Settings is the one description of node n's service settings: the
// local provider passes them as flags (Settings.Flags), the VM providers
// write them to the systemd unit's env file (Settings.Env). Placement
// holds what the provider decides.
func (l *Lab) Settings(n Node, p Placement) (Settings, error) {
	var s Settings
	add := func(flag, v string) {
		if v != "" {
			s = append(s, Setting{Flag: flag, Value: v})
		}
	}
	add("listen", p.Listen)
	switch n.Role {
	case RoleMaster:
		add("data-dir", p.DataDir)
		add("policy", l.Services.Policy)
		add("allow-cidr", p.AllowCIDR)
	case RoleSlave:
		if p.MasterURL == "" {
			return nil, fmt.Errorf("node %s: no master URL for the slave", n.Name)
		}
		add("master", p.MasterURL)
		add("id", n.Name)
		add("advertise", p.Advertise)
	default:
		return nil, fmt.Errorf("node %s: role %q is not %s or %s", n.Name, n.Role, RoleMaster, RoleSlave)
	}
	add("token", l.Services.Token)
	return s, nil
}

// Settings of one service, in a fixed order.
type Settings []Setting

// Flags renders the settings as command-line arguments: --flag value.
func (s Settings) Flags() []string {
	out := make([]string, 0, 2*len(s))
	for _, x := range s {
		out = append(out, "--"+x.Flag, x.Value)
	}
	return out
}

// Env renders the settings as their environment twins: CALCLAB_FLAG=value
// (the same names internal/envflag reads).
func (s Settings) Env() map[string]string {
	env := make(map[string]string, len(s))
	for _, x := range s {
		env[envflag.EnvName(x.Flag)] = x.Value
	}
	return env
}

// Names lists the flags set, sorted.
func (s Settings) Names() []string {
	out := make([]string, 0, len(s))
	for _, x := range s {
		out = append(out, x.Flag)
	}
	sort.Strings(out)
	return out
}
