// Package spec reads and validates lab.yaml, the one description of a lab
// that every provider (local processes, QEMU, Hyper-V) brings up.
package spec

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
)

// Roles of a node.
const (
	RoleMaster = "master"
	RoleSlave  = "slave"
)

// Providers a lab can run on.
var Providers = []string{"local", "qemu", "hyperv"}

// Lab is a whole lab.yaml.
type Lab struct {
	Name     string   `yaml:"name"`
	Provider string   `yaml:"provider"`
	Network  Network  `yaml:"network"`
	SSHUser  string   `yaml:"ssh_user"`
	Services Services `yaml:"services"`
	Nodes    []Node   `yaml:"nodes"`
	// HyperV is the hyperv provider's host (see hyperv.go).
	HyperV HyperV `yaml:"hyperv"`

	// File is the path the lab was read from ("" when built in code).
	File string `yaml:"-"`
	// lines maps a field path (nodes[1].ip) to its line in File.
	lines map[string]int
}

// Network is the lab's internal switch.
type Network struct {
	Name    string `yaml:"name"`
	CIDR    string `yaml:"cidr"`
	Gateway string `yaml:"gateway"`
}

// Services holds the settings of the calclab services on every node.
type Services struct {
	MasterPort int    `yaml:"master_port"`
	SlavePort  int    `yaml:"slave_port"`
	Policy     string `yaml:"policy"`
	Token      string `yaml:"token"`
	// LocalHost is the loopback address the local provider binds to.
	LocalHost string `yaml:"local_host"`
}

// Node is one machine (or, for the local provider, one process).
type Node struct {
	Name   string `yaml:"name"`
	Role   string `yaml:"role"`
	IP     string `yaml:"ip"`
	CPUs   int    `yaml:"cpus"`
	Memory int    `yaml:"memory_mb"`
	Disk   int    `yaml:"disk_gb"`
	Image  string `yaml:"image"`
	// LocalPort is the loopback port of this node under the local
	// provider (default: master_port for the master, slave_port+i for the
	// i-th slave counting from 0).
	LocalPort int `yaml:"local_port"`
}

// Error is a validation error that names the file, line and field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "lab spec"
	}
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", loc, e.Msg)
}

// Load reads, defaults and validates the lab file at path.
func Load(path string) (*Lab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read lab spec: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes, defaults and validates a lab spec; file names it in errors.
func Parse(data []byte, file string) (*Lab, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(file, err)
	}
	lab := &Lab{File: file, lines: map[string]int{}}
	if len(root.Content) == 0 {
		return nil, &Error{File: file, Msg: "the file is empty"}
	}
	// Unknown fields and values of the wrong kind, in plain words.
	if err := checkShape(file, &root, reflect.TypeFor[Lab](), ""); err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(lab); err != nil {
		return nil, yamlError(file, err)
	}
	recordLines(root.Content[0], "", lab.lines)
	lab.applyDefaults()
	if err := lab.Validate(); err != nil {
		return nil, err
	}
	return lab, nil
}

// recordLines walks a YAML tree and records the line of every field path.
func recordLines(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			out[p] = k.Line
			recordLines(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			out[p] = c.Line
			recordLines(c, p, out)
		}
	}
}

func (l *Lab) applyDefaults() {
	if l.Name == "" {
		l.Name = "calclab"
	}
	if l.Provider == "" {
		l.Provider = "local"
	}
	if l.Network.Name == "" {
		l.Network.Name = l.Name + "-internal"
	}
	if l.Network.CIDR == "" {
		l.Network.CIDR = "192.168.56.0/24"
	}
	if l.SSHUser == "" {
		l.SSHUser = "lab"
	}
	if l.Services.MasterPort == 0 {
		l.Services.MasterPort = 5000
	}
	if l.Services.SlavePort == 0 {
		l.Services.SlavePort = 6001
	}
	if l.Services.Policy == "" {
		l.Services.Policy = "least-conn"
	}
	if l.Services.LocalHost == "" {
		l.Services.LocalHost = "127.0.0.1"
	}
	slaves := 0
	for i := range l.Nodes {
		n := &l.Nodes[i]
		if n.CPUs == 0 {
			n.CPUs = 1
		}
		if n.Memory == 0 {
			n.Memory = 1024
		}
		if n.Disk == 0 {
			n.Disk = 4
		}
		if n.LocalPort == 0 {
			switch n.Role {
			case RoleMaster:
				n.LocalPort = l.Services.MasterPort
			case RoleSlave:
				n.LocalPort = l.Services.SlavePort + slaves
			}
		}
		if n.Role == RoleSlave {
			slaves++
		}
	}
}

var nodeName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

func (l *Lab) fail(field, format string, args ...any) error {
	line := l.lines[field]
	if line == 0 {
		// fall back to the closest enclosing field that has a line
		for p := field; p != "" && line == 0; {
			i := strings.LastIndexAny(p, ".[")
			if i < 0 {
				break
			}
			p = p[:i]
			line = l.lines[p]
		}
	}
	return &Error{File: l.File, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the spec and returns the first problem, naming its line
// and field.
func (l *Lab) Validate() error {
	if !nodeName.MatchString(l.Name) {
		return l.fail("name", "%q must be lower-case letters, digits and dashes, starting with a letter", l.Name)
	}
	if !contains(Providers, l.Provider) {
		return l.fail("provider", "%q is not one of %s", l.Provider, strings.Join(Providers, ", "))
	}
	cidr, err := netip.ParsePrefix(l.Network.CIDR)
	if err != nil || !cidr.Addr().Is4() {
		return l.fail("network.cidr", "%q is not an IPv4 network such as 192.168.56.0/24", l.Network.CIDR)
	}
	if cidr != cidr.Masked() {
		return l.fail("network.cidr", "%q has host bits set; did you mean %s?", l.Network.CIDR, cidr.Masked())
	}
	if l.Network.Gateway != "" {
		gw, err := netip.ParseAddr(l.Network.Gateway)
		if err != nil || !cidr.Contains(gw) {
			return l.fail("network.gateway", "%q is not an address inside %s", l.Network.Gateway, cidr)
		}
	}
	for _, p := range []struct {
		field string
		v     int
	}{{"services.master_port", l.Services.MasterPort}, {"services.slave_port", l.Services.SlavePort}} {
		if p.v < 1 || p.v > 65535 {
			return l.fail(p.field, "%d is not a TCP port; use 1 to 65535", p.v)
		}
	}
	// What the services themselves refuse at start (cmd/master, cmd/slave).
	if _, err := balancer.New(l.Services.Policy); err != nil {
		return l.fail("services.policy", "%q is not a balancing policy; use one of %s", l.Services.Policy, strings.Join(balancer.Names(), ", "))
	}
	if err := api.CheckToken(l.Services.Token); err != nil {
		return l.fail("services.token", "the token %v", err)
	}
	lh, err := netip.ParseAddr(l.Services.LocalHost)
	if err != nil || !lh.IsLoopback() {
		return l.fail("services.local_host", "%q must be a loopback address such as 127.0.0.1", l.Services.LocalHost)
	}
	if len(l.Nodes) == 0 {
		return l.fail("nodes", "a lab needs one master node and at least one slave node")
	}
	masters := 0
	for _, n := range l.Nodes {
		if n.Role == RoleMaster {
			masters++
		}
	}
	if masters > 1 {
		return l.fail("nodes", "a lab needs exactly one master node, found %d", masters)
	}
	names, ips, ports := map[string]bool{}, map[string]string{}, map[int]string{}
	for i, n := range l.Nodes {
		f := fmt.Sprintf("nodes[%d]", i)
		if !nodeName.MatchString(n.Name) {
			return l.fail(f+".name", "%q must be lower-case letters, digits and dashes, starting with a letter", n.Name)
		}
		if names[n.Name] {
			return l.fail(f+".name", "node name %q is used twice", n.Name)
		}
		names[n.Name] = true
		switch n.Role {
		case RoleMaster, RoleSlave:
		default:
			return l.fail(f+".role", "%q must be master or slave", n.Role)
		}
		ip, err := netip.ParseAddr(n.IP)
		if err != nil {
			return l.fail(f+".ip", "%q is not an IPv4 address", n.IP)
		}
		if !cidr.Contains(ip) || ip == cidr.Addr() {
			return l.fail(f+".ip", "%s is not a host address inside network %s", ip, cidr)
		}
		if l.Network.Gateway != "" && n.IP == l.Network.Gateway {
			return l.fail(f+".ip", "%s is the network's gateway", ip)
		}
		if other, dup := ips[n.IP]; dup {
			return l.fail(f+".ip", "%s is already the address of %s", ip, other)
		}
		ips[n.IP] = n.Name
		if n.LocalPort < 1 || n.LocalPort > 65535 {
			return l.fail(f+".local_port", "%d is not a TCP port; use 1 to 65535 (without local_port: the service's port, plus the slave's index)", n.LocalPort)
		}
		if other, dup := ports[n.LocalPort]; dup {
			return l.fail(f+".local_port", "port %d is already used by %s", n.LocalPort, other)
		}
		ports[n.LocalPort] = n.Name
		if n.CPUs < 1 || n.CPUs > 64 {
			return l.fail(f+".cpus", "%d must be from 1 to 64", n.CPUs)
		}
		if n.Memory < 256 {
			return l.fail(f+".memory_mb", "%d MiB is too little; at least 256", n.Memory)
		}
		if n.Disk < 0 {
			return l.fail(f+".disk_gb", "%d must be at least 1 (leave it out for 4)", n.Disk)
		}
	}
	if masters != 1 {
		return l.fail("nodes", "a lab needs exactly one master node, found %d", masters)
	}
	if len(l.Nodes) < 2 {
		return l.fail("nodes", "a lab needs at least one slave node")
	}
	return l.validateHyperV()
}

// Master returns the master node.
func (l *Lab) Master() Node {
	for _, n := range l.Nodes {
		if n.Role == RoleMaster {
			return n
		}
	}
	return Node{}
}

// Slaves returns the slave nodes in file order.
func (l *Lab) Slaves() []Node {
	var out []Node
	for _, n := range l.Nodes {
		if n.Role == RoleSlave {
			out = append(out, n)
		}
	}
	return out
}

// Node returns the node with the given name.
func (l *Lab) Node(name string) (Node, bool) {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// NodeNames lists the node names in file order.
func (l *Lab) NodeNames() []string {
	out := make([]string, len(l.Nodes))
	for i, n := range l.Nodes {
		out[i] = n.Name
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
