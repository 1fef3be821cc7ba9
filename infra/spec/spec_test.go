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
		}, "field ram not found", "lab.yaml"},
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
