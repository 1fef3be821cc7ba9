package spec

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const good = `name: calclab
provider: local
network:
  cidr: 192.168.56.0/24
  gateway: 192.168.56.1
nodes:
  - name: master
    role: master
    ip: 192.168.56.10
  - name: slave-1
    role: slave
    ip: 192.168.56.11
  - name: slave-2
    role: slave
    ip: 192.168.56.12
`

func TestRepoLabYAMLIsValid(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	lab, err := Load(filepath.Join(filepath.Dir(file), "..", "..", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if lab.Master().IP != "192.168.56.10" || len(lab.Slaves()) != 2 || lab.Master().LocalPort != 5000 {
		t.Fatalf("lab.yaml: master %+v, %d slaves", lab.Master(), len(lab.Slaves()))
	}
	want := []int{6001, 6002}
	for i, s := range lab.Slaves() {
		if s.LocalPort != want[i] {
			t.Fatalf("slave %s local port %d, want %d", s.Name, s.LocalPort, want[i])
		}
	}
}

func TestDefaults(t *testing.T) {
	lab, err := Parse([]byte(good), "lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if lab.SSHUser != "lab" || lab.Services.Policy != "least-conn" || lab.Services.LocalHost != "127.0.0.1" || lab.Nodes[1].CPUs != 1 || lab.Nodes[1].Memory != 1024 {
		t.Fatalf("defaults not applied: %+v", lab)
	}
}

func TestAddingASlaveIsOneBlock(t *testing.T) {
	lab, err := Parse([]byte(good+"  - name: slave-3\n    role: slave\n    ip: 192.168.56.13\n"), "lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := lab.Node("slave-3"); !ok || n.LocalPort != 6003 {
		t.Fatalf("slave-3: %+v %v", n, ok)
	}
}

func TestValidationErrorsNameLineAndField(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		want    string // substring of the error
		wantLen string // "lab.yaml:<line>"
	}{
		{"unknown provider", func(s string) string { return strings.Replace(s, "provider: local", "provider: docker", 1) }, `provider: "docker" is not one of`, "lab.yaml:2:"},
		{"bad cidr", func(s string) string { return strings.Replace(s, "cidr: 192.168.56.0/24", "cidr: 192.168.56.0/33", 1) }, "network.cidr", "lab.yaml:4:"},
		{"host bits in cidr", func(s string) string { return strings.Replace(s, "cidr: 192.168.56.0/24", "cidr: 192.168.56.7/24", 1) }, "did you mean 192.168.56.0/24", "lab.yaml:4:"},
		{"gateway outside", func(s string) string { return strings.Replace(s, "gateway: 192.168.56.1", "gateway: 10.0.0.1", 1) }, "network.gateway", "lab.yaml:5:"},
		{"ip outside network", func(s string) string { return strings.Replace(s, "ip: 192.168.56.11", "ip: 192.168.57.11", 1) }, "nodes[1].ip: 192.168.57.11 is not a host address inside network 192.168.56.0/24", "lab.yaml:12:"},
		{"duplicate ip", func(s string) string { return strings.Replace(s, "ip: 192.168.56.12", "ip: 192.168.56.11", 1) }, "already the address of slave-1", "lab.yaml:15:"},
		{"ip is the gateway", func(s string) string { return strings.Replace(s, "ip: 192.168.56.12", "ip: 192.168.56.1", 1) }, "gateway", "lab.yaml:15:"},
		{"duplicate name", func(s string) string { return strings.Replace(s, "name: slave-2", "name: slave-1", 1) }, `node name "slave-1" is used twice`, "lab.yaml:13:"},
		{"bad role", func(s string) string {
			return strings.Replace(s, "role: slave\n    ip: 192.168.56.12", "role: worker\n    ip: 192.168.56.12", 1)
		}, `nodes[2].role: "worker" must be master or slave`, "lab.yaml:14:"},
		{"two masters", func(s string) string {
			return strings.Replace(s, "role: slave\n    ip: 192.168.56.12", "role: master\n    ip: 192.168.56.12", 1)
		}, "exactly one master node, found 2", "lab.yaml:6:"},
		{"unknown field", func(s string) string {
			return strings.Replace(s, "    ip: 192.168.56.10", "    ip: 192.168.56.10\n    ram: 4", 1)
		}, "nodes[0].ram: unknown field; the fields in nodes[0] are name, role, ip, cpus, memory_mb", "lab.yaml:10:"},
		{"bad name", func(s string) string { return strings.Replace(s, "name: slave-2", "name: Slave_2", 1) }, "lower-case", "lab.yaml:13:"},
		{"not yaml", func(string) string { return "nodes: [" }, "lab.yaml", "lab.yaml"},
		{"empty", func(string) string { return "" }, "empty", "lab.yaml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.edit(good)), "lab.yaml")
			if err == nil {
				t.Fatal("invalid spec accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), tc.wantLen) {
				t.Fatalf("error %q, want it to start with %q and mention %q", err, tc.wantLen, tc.want)
			}
		})
	}
}

// goInternals are words of Go's and yaml's own error texts that must not
// reach a lab user.
var goInternals = []string{"netip.", "ParsePrefix", "ParseAddr", "!!", "unmarshal", "spec.", "type ", "strconv"}

// TestValidateChecksWhatTheServicesNeed: what `lab up` would only find
// out when a service refuses to start (or a slave is never let in) is a
// validation error, in the form file:line: field: what is wrong and what
// is allowed, with no Go internals; so are YAML values of the wrong type
// and unknown fields.
func TestValidateChecksWhatTheServicesNeed(t *testing.T) {
	const base = `name: calclab
network: {cidr: 192.168.56.0/24}
services:
  master_port: 5000
  policy: least-conn
  token: ""
nodes:
  - name: master
    role: master
    ip: 192.168.56.10
    cpus: 1
  - name: slave-1
    role: slave
    ip: 192.168.56.11
`
	tests := []struct {
		name, old, new string
		want           string // the whole error
	}{
		{"policy the master does not have", "policy: least-conn", "policy: fastest",
			`lab.yaml:5: services.policy: "fastest" is not a balancing policy; use one of least-conn, round-robin, p2c, consistent-hash`},
		{"token with a space", `token: ""`, `token: "my token"`,
			`lab.yaml:6: services.token: the token has the character ' '; use letters, digits, - . _ ~ + / (and = at the end)`},
		{"token with a newline", `token: ""`, `token: "a\nb"`,
			`lab.yaml:6: services.token: the token has the character '\n'; use letters, digits, - . _ ~ + / (and = at the end)`},
		{"port out of range", "master_port: 5000", "master_port: 70000",
			"lab.yaml:4: services.master_port: 70000 is not a TCP port; use 1 to 65535"},
		{"port not a number", "master_port: 5000", "master_port: http",
			`lab.yaml:4: services.master_port: got "http"; it must be a whole number`},
		{"cpus not a number", "cpus: 1", "cpus: two",
			`lab.yaml:11: nodes[0].cpus: got "two"; it must be a whole number`},
		{"cpus a fraction", "cpus: 1", "cpus: 1.5",
			`lab.yaml:11: nodes[0].cpus: got "1.5"; it must be a whole number`},
		{"unknown node field", "cpus: 1", "cpu: 1",
			"lab.yaml:11: nodes[0].cpu: unknown field; the fields in nodes[0] are name, role, ip, cpus, memory_mb, disk_gb, image, local_port"},
		{"unknown top-level field", "name: calclab", "nmae: calclab",
			"lab.yaml:1: nmae: unknown field; the fields here are name, provider, network, ssh_user, services, nodes, hyperv"},
		{"network not a mapping", "network: {cidr: 192.168.56.0/24}", "network: 192.168.56.0/24",
			`lab.yaml:2: network: got "192.168.56.0/24"; it must be a mapping of these fields: name, cidr, gateway`},
		{"nodes not a list", "nodes:\n", "nodes: none\nmore:\n",
			`lab.yaml:7: nodes: got "none"; it must be a list`},
		{"cidr not one value", "cidr: 192.168.56.0/24", "cidr: [192.168.56.0/24]",
			"lab.yaml:2: network.cidr: got a list; it must be a single value (quote it if it holds special characters)"},
		{"a field twice", "    cpus: 1\n", "    cpus: 1\n    cpus: 2\n",
			"lab.yaml:12: nodes[0].cpus: set twice (first on line 11); keep one"},
		{"cidr not a network", "cidr: 192.168.56.0/24", "cidr: 192.168.56.0",
			`lab.yaml:2: network.cidr: "192.168.56.0" is not an IPv4 network such as 192.168.56.0/24`},
		{"disk below 1", "cpus: 1", "cpus: 1\n    disk_gb: -1",
			"lab.yaml:12: nodes[0].disk_gb: -1 must be at least 1 (leave it out for 4)"},
		{"not yaml", "nodes:", "nodes: [",
			"lab.yaml:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("test spec has no %q", tc.old)
			}
			_, err := Parse([]byte(strings.Replace(base, tc.old, tc.new, 1)), "lab.yaml")
			if err == nil {
				t.Fatal("invalid spec accepted")
			}
			if tc.want == "lab.yaml:" {
				if !strings.HasPrefix(err.Error(), "lab.yaml:") || strings.Count(err.Error(), "\n") > 0 {
					t.Errorf("error %q: want one line starting with lab.yaml:<line>", err)
				}
			} else if err.Error() != tc.want {
				t.Errorf("error\n %s\nwant\n %s", err, tc.want)
			}
			for _, w := range goInternals {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error %q shows Go internals (%q)", err, w)
				}
			}
		})
	}
	// Every policy the master has passes, in any case, as the master
	// accepts it.
	for _, p := range []string{"least-conn", "round-robin", "p2c", "consistent-hash", "P2C"} {
		if _, err := Parse([]byte(strings.Replace(base, "policy: least-conn", "policy: "+p, 1)), "lab.yaml"); err != nil {
			t.Errorf("policy %s: %v", p, err)
		}
	}
	if _, err := Parse([]byte(strings.Replace(base, `token: ""`, "token: abc-DEF_0.9~+/==", 1)), "lab.yaml"); err != nil {
		t.Errorf("a token of token characters: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("missing file: %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}
