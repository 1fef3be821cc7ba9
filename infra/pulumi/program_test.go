package pulumi

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/calclab/calclab/infra/pulumiprovider"
	"github.com/calclab/calclab/infra/resources"
	"github.com/calclab/calclab/infra/spec"
)

// mocks records every resource the program registers and answers with
// its inputs plus the outputs a local lab would have.
type mocks struct {
	mu   sync.Mutex
	regs map[string]resource.PropertyMap // "<token> <name>" -> inputs
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	m.regs[args.TypeToken+" "+args.Name] = args.Inputs
	m.mu.Unlock()
	out := args.Inputs.Copy()
	switch args.TypeToken {
	case pulumiprovider.NodeToken:
		addr := fmt.Sprintf("%s:%v", args.Inputs["localHost"].StringValue(), args.Inputs["localPort"].NumberValue())
		out["address"] = resource.NewStringProperty(addr)
		out["url"] = resource.NewStringProperty("http://" + addr)
		out["sshHost"] = resource.NewStringProperty("")
		out["sshPort"] = resource.NewNumberProperty(0)
	case pulumiprovider.DeploymentToken:
		out["url"] = resource.NewStringProperty(fmt.Sprintf("http://127.0.0.1:%v", args.Inputs["localPort"].NumberValue()))
		out["unit"] = resource.NewStringProperty("process")
	case pulumiprovider.NetworkToken:
		out["switch"] = resource.NewStringProperty("loopback")
	}
	return args.Name, out, nil
}

func (m *mocks) Call(pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return resource.PropertyMap{}, nil
}

// labYAML is a local lab with one master and the given slaves.
func labYAML(name string, slaves int, token string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nprovider: local\nnetwork: {name: net0, cidr: 10.9.0.0/24}\nservices:\n  master_port: 7100\n  slave_port: 7101\n  policy: round-robin\n  token: %q\nnodes:\n", name, token)
	fmt.Fprintf(&b, "  - {name: master, role: master, ip: 10.9.0.10, cpus: 2, memory_mb: 2048}\n")
	for i := 1; i <= slaves; i++ {
		fmt.Fprintf(&b, "  - {name: slave-%d, role: slave, ip: 10.9.0.%d}\n", i, 10+i)
	}
	return b.String()
}

func TestProgramDeclaresTheLab(t *testing.T) {
	bin := t.TempDir()
	for _, role := range []string{"master", "slave"} {
		if err := os.WriteFile(filepath.Join(bin, role), []byte("fake "+role), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	masterHash, _ := resources.BinaryHash("local", bin, "master")
	slaveHash, _ := resources.BinaryHash("local", bin, "slave")
	tests := []struct {
		name   string
		slaves int
		token  string
	}{
		{"three nodes", 2, ""},
		{"four nodes", 3, "s3cret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "lab.yaml")
			if err := os.WriteFile(file, []byte(labYAML("mocklab", tc.slaves, tc.token)), 0o644); err != nil {
				t.Fatal(err)
			}
			lab, err := spec.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			stateDir := filepath.Join(dir, ".lab")
			m := &mocks{regs: map[string]resource.PropertyMap{}}
			err = pulumi.RunErr(Program(lab, stateDir, bin), pulumi.WithMocks("calclab", "mocklab", m))
			if err != nil {
				t.Fatalf("program: %v", err)
			}

			var got []string
			for k := range m.regs {
				got = append(got, k)
			}
			sort.Strings(got)
			want := []string{pulumiprovider.DeploymentToken + " master", pulumiprovider.NetworkToken + " net0", pulumiprovider.NodeToken + " master"}
			for i := 1; i <= tc.slaves; i++ {
				want = append(want, fmt.Sprintf("%s slave-%d", pulumiprovider.DeploymentToken, i), fmt.Sprintf("%s slave-%d", pulumiprovider.NodeToken, i))
			}
			sort.Strings(want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("resources:\n got %v\nwant %v", got, want)
			}

			str := func(key, field string) string {
				v, ok := m.regs[key][resource.PropertyKey(field)]
				if !ok {
					return "<unset>"
				}
				if v.IsSecret() {
					return "secret:" + v.SecretValue().Element.StringValue()
				}
				if v.IsNumber() {
					return fmt.Sprint(v.NumberValue())
				}
				return v.StringValue()
			}
			net := pulumiprovider.NetworkToken + " net0"
			for f, w := range map[string]string{"lab": "mocklab", "provider": "local", "stateDir": stateDir, "name": "net0", "cidr": "10.9.0.0/24", "gateway": "<unset>"} {
				if g := str(net, f); g != w {
					t.Errorf("network %s = %q, want %q", f, g, w)
				}
			}
			master := pulumiprovider.NodeToken + " master"
			for f, w := range map[string]string{"role": "master", "ip": "10.9.0.10", "cpus": "2", "memoryMb": "2048", "localPort": "7100", "servicePort": "7100", "network": "net0", "labFile": file} {
				if g := str(master, f); g != w {
					t.Errorf("node master %s = %q, want %q", f, g, w)
				}
			}
			last := fmt.Sprintf("slave-%d", tc.slaves)
			slaveNode := pulumiprovider.NodeToken + " " + last
			for f, w := range map[string]string{"role": "slave", "ip": fmt.Sprintf("10.9.0.%d", 10+tc.slaves), "localPort": fmt.Sprint(7100 + tc.slaves), "servicePort": "7101"} {
				if g := str(slaveNode, f); g != w {
					t.Errorf("node %s %s = %q, want %q", last, f, g, w)
				}
			}
			wantToken := "<unset>"
			if tc.token != "" {
				wantToken = "secret:" + tc.token
			}
			md := pulumiprovider.DeploymentToken + " master"
			for f, w := range map[string]string{"node": "master", "role": "master", "policy": "round-robin", "binaryHash": masterHash, "binDir": bin, "masterNode": "<unset>", "token": wantToken} {
				if g := str(md, f); g != w {
					t.Errorf("deployment master %s = %q, want %q", f, g, w)
				}
			}
			sd := pulumiprovider.DeploymentToken + " " + last
			for f, w := range map[string]string{"node": last, "role": "slave", "masterNode": "master", "masterIp": "10.9.0.10", "masterLocalPort": "7100", "binaryHash": slaveHash, "token": wantToken} {
				if g := str(sd, f); g != w {
					t.Errorf("deployment %s %s = %q, want %q", last, f, g, w)
				}
			}
		})
	}
}

func TestInputs(t *testing.T) {
	m := Inputs(resources.DeploymentArgs{Node: "n", LocalPort: 5, Token: "t"})
	if _, ok := m["masterNode"]; ok {
		t.Errorf("an empty optional input is set: %v", m)
	}
	if _, ok := m["node"].(pulumi.String); !ok {
		t.Errorf("node: %T", m["node"])
	}
	if _, ok := m["localPort"].(pulumi.Int); !ok {
		t.Errorf("localPort: %T", m["localPort"])
	}
	if _, ok := m["token"].(pulumi.Output); !ok {
		t.Errorf("token is not a secret output: %T", m["token"])
	}
}
