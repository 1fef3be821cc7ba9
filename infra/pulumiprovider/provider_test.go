package pulumiprovider

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/blang/semver"
	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/integration"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"github.com/calclab/calclab/infra/resources"
)

func server(t *testing.T) integration.Server {
	t.Helper()
	prov, err := New()
	if err != nil {
		t.Fatal(err)
	}
	s, err := integration.NewServer(context.Background(), Name, semver.MustParse(Version), integration.WithProvider(prov))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// props turns a model struct into a property map by its pulumi tags
// (embedded structs flattened; an empty optional field left out), the
// way the engine sends them.
func props(v any) property.Map {
	m := map[string]property.Value{}
	var walk func(rv reflect.Value)
	walk = func(rv reflect.Value) {
		t := rv.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Anonymous {
				walk(rv.Field(i))
				continue
			}
			name, opt, _ := strings.Cut(f.Tag.Get("pulumi"), ",")
			if name == "" || opt == "optional" && rv.Field(i).IsZero() {
				continue
			}
			switch rv.Field(i).Kind() {
			case reflect.String:
				m[name] = property.New(rv.Field(i).String())
			case reflect.Int:
				m[name] = property.New(float64(rv.Field(i).Int()))
			}
		}
	}
	walk(reflect.ValueOf(v))
	return property.NewMap(m)
}

func urn(typ, name string) resource.URN {
	return resource.NewURN("dev", Name, "", tokens.Type(typ), name)
}

func TestSchema(t *testing.T) {
	resp, err := server(t).GetSchema(p.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Name      string `json:"name"`
		Resources map[string]struct {
			InputProperties map[string]struct {
				Secret bool `json:"secret"`
			} `json:"inputProperties"`
			Properties map[string]any `json:"properties"`
			Required   []string       `json:"requiredInputs"`
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(resp.Schema), &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Name != "calclab" {
		t.Errorf("package %q", schema.Name)
	}
	for _, tc := range []struct {
		token   string
		inputs  []string
		outputs []string
	}{
		{NetworkToken, []string{"lab", "provider", "stateDir", "name", "cidr", "gateway"}, []string{"switch"}},
		{NodeToken, []string{"name", "role", "ip", "cpus", "memoryMb", "image", "localPort", "servicePort"}, []string{"address", "url", "sshHost", "sshPort"}},
		{DeploymentToken, []string{"node", "role", "binDir", "policy", "token", "binaryHash", "masterNode"}, []string{"url", "unit"}},
	} {
		r, ok := schema.Resources[tc.token]
		if !ok {
			t.Errorf("no resource %s in the schema", tc.token)
			continue
		}
		for _, in := range tc.inputs {
			if _, ok := r.InputProperties[in]; !ok {
				t.Errorf("%s: no input %s", tc.token, in)
			}
		}
		for _, out := range append(tc.inputs, tc.outputs...) {
			if _, ok := r.Properties[out]; !ok {
				t.Errorf("%s: no output %s", tc.token, out)
			}
		}
	}
	if !schema.Resources[DeploymentToken].InputProperties["token"].Secret {
		t.Errorf("the deployment's token is not a secret")
	}
}

func TestDiffFollowsTheModel(t *testing.T) {
	dep := resources.DeploymentArgs{
		Lab: "l", Provider: "local", StateDir: "/state", BinDir: "/bin", Node: "slave-1", Role: "slave",
		IP: "10.0.0.11", CIDR: "10.0.0.0/24", SSHUser: "lab", LocalHost: "127.0.0.1", LocalPort: 6001,
		MasterPort: 5000, SlavePort: 6001, Policy: "least-conn", MasterNode: "master", MasterIP: "10.0.0.10",
		MasterLocalPort: 5000, BinaryHash: "sha256:aa",
	}
	node := resources.NodeArgs{
		Lab: "l", Provider: "qemu", StateDir: "/state", Network: "n", CIDR: "10.0.0.0/24", SSHUser: "lab",
		Name: "slave-1", Role: "slave", IP: "10.0.0.11", CPUs: 1, MemoryMB: 1024, DiskGB: 4, Image: "a.qcow2",
		LocalHost: "127.0.0.1", LocalPort: 6001, ServicePort: 6001,
	}
	tests := []struct {
		name    string
		typ     string
		state   any
		inputs  any
		changes map[string]p.DiffKind
	}{
		{"unchanged deployment", DeploymentToken, resources.DeploymentState{DeploymentArgs: dep, URL: "u", Unit: "process"}, dep, nil},
		{"new binary updates in place", DeploymentToken, resources.DeploymentState{DeploymentArgs: dep}, with(dep, func(a *resources.DeploymentArgs) { a.BinaryHash = "sha256:bb" }),
			map[string]p.DiffKind{"binaryHash": p.Update}},
		{"policy and token update in place", DeploymentToken, resources.DeploymentState{DeploymentArgs: dep}, with(dep, func(a *resources.DeploymentArgs) { a.Policy, a.Token = "p2c", "t" }),
			map[string]p.DiffKind{"policy": p.Update, "token": p.Update}},
		{"another role replaces", DeploymentToken, resources.DeploymentState{DeploymentArgs: dep}, with(dep, func(a *resources.DeploymentArgs) { a.Role = "master" }),
			map[string]p.DiffKind{"role": p.UpdateReplace}},
		{"unchanged node", NodeToken, resources.NodeState{NodeArgs: node, Address: "10.0.0.11"}, node, nil},
		{"another image replaces the node", NodeToken, resources.NodeState{NodeArgs: node}, with(node, func(a *resources.NodeArgs) { a.Image = "b.qcow2" }),
			map[string]p.DiffKind{"image": p.UpdateReplace}},
		{"more memory replaces the node", NodeToken, resources.NodeState{NodeArgs: node}, with(node, func(a *resources.NodeArgs) { a.MemoryMB = 2048 }),
			map[string]p.DiffKind{"memoryMb": p.UpdateReplace}},
	}
	s := server(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Diff(p.DiffRequest{ID: "x", Urn: urn(tc.typ, "slave-1"), State: props(tc.state), Inputs: props(tc.inputs)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.HasChanges != (len(tc.changes) > 0) {
				t.Errorf("HasChanges %v, want changes %v", resp.HasChanges, tc.changes)
			}
			got := map[string]p.DiffKind{}
			replace := false
			for k, d := range resp.DetailedDiff {
				got[k] = d.Kind
				replace = replace || d.Kind == p.UpdateReplace
			}
			if len(tc.changes) > 0 && !reflect.DeepEqual(got, tc.changes) {
				t.Errorf("detailed diff %v, want %v", got, tc.changes)
			}
			if resp.DeleteBeforeReplace != replace {
				t.Errorf("DeleteBeforeReplace %v with replace %v", resp.DeleteBeforeReplace, replace)
			}
		})
	}
}

func with[A any](a A, f func(*A)) A {
	f(&a)
	return a
}

func TestCheckRefusesBadInputs(t *testing.T) {
	net := resources.NetworkArgs{Lab: "l", Provider: "local", StateDir: "/state", Name: "n", CIDR: "10.0.0.0/24"}
	tests := []struct {
		name string
		args resources.NetworkArgs
		want string
	}{
		{"valid", net, ""},
		{"bad cidr", with(net, func(a *resources.NetworkArgs) { a.CIDR = "10.0.0.1/33" }), "cidr"},
		{"relative state dir", with(net, func(a *resources.NetworkArgs) { a.StateDir = "state" }), "absolute"},
		{"unknown provider", with(net, func(a *resources.NetworkArgs) { a.Provider = "aws" }), "provider"},
	}
	s := server(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.Check(p.CheckRequest{Urn: urn(NetworkToken, "n"), Inputs: props(tc.args)})
			if err != nil {
				t.Fatal(err)
			}
			var reasons []string
			for _, f := range resp.Failures {
				reasons = append(reasons, f.Reason)
			}
			all := strings.Join(reasons, "; ")
			if tc.want == "" && len(reasons) > 0 || tc.want != "" && !strings.Contains(all, tc.want) {
				t.Errorf("failures %q, want %q", all, tc.want)
			}
		})
	}
}
