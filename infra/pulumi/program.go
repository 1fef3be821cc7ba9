package pulumi

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/calclab/calclab/infra/pulumiprovider"
	"github.com/calclab/calclab/infra/resources"
	"github.com/calclab/calclab/infra/spec"
)

// Network is a calclab:index:Network in a program.
type Network struct {
	pulumi.CustomResourceState
	Name   pulumi.StringOutput `pulumi:"name"`
	CIDR   pulumi.StringOutput `pulumi:"cidr"`
	Switch pulumi.StringOutput `pulumi:"switch"`
}

// Node is a calclab:index:Node in a program.
type Node struct {
	pulumi.CustomResourceState
	Name    pulumi.StringOutput `pulumi:"name"`
	Role    pulumi.StringOutput `pulumi:"role"`
	Address pulumi.StringOutput `pulumi:"address"`
	URL     pulumi.StringOutput `pulumi:"url"`
	SSHHost pulumi.StringOutput `pulumi:"sshHost"`
	SSHPort pulumi.IntOutput    `pulumi:"sshPort"`
}

// Deployment is a calclab:index:Deployment in a program.
type Deployment struct {
	pulumi.CustomResourceState
	Node pulumi.StringOutput `pulumi:"node"`
	Role pulumi.StringOutput `pulumi:"role"`
	URL  pulumi.StringOutput `pulumi:"url"`
	Unit pulumi.StringOutput `pulumi:"unit"`
}

// Inputs turns a model's Args struct into a resource's inputs, by the
// fields' pulumi tags: strings and ints; an optional field left empty is
// not set; a field tagged provider:"secret" (the token) is a secret.
func Inputs(args any) pulumi.Map {
	m := pulumi.Map{}
	v := reflect.ValueOf(args)
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("pulumi"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		if opts == "optional" && fv.IsZero() {
			continue
		}
		var in pulumi.Input
		switch fv.Kind() {
		case reflect.String:
			in = pulumi.String(fv.String())
		case reflect.Int:
			in = pulumi.Int(int(fv.Int()))
		default:
			continue
		}
		if f.Tag.Get("provider") == "secret" {
			in = pulumi.ToSecret(in)
		}
		m[name] = in
	}
	return m
}

// Program is the lab as a Pulumi program: the network, one node per
// lab.yaml entry and the services deployed onto each, in the order they
// depend on each other (network, nodes, the master's deployment, the
// slaves' deployments). The inputs are resources.FromSpec's; the stack's
// outputs are master_url and nodes (engine.Outputs).
func Program(lab *spec.Lab, stateDir, binDir string) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		plan, err := resources.FromSpec(lab, stateDir, binDir)
		if err != nil {
			return err
		}
		return Declare(ctx, plan)
	}
}

// Declare registers the resources of plan.
func Declare(ctx *pulumi.Context, plan resources.Plan) error {
	network := &Network{}
	if err := ctx.RegisterResource(pulumiprovider.NetworkToken, plan.Network.Name, Inputs(plan.Network), network); err != nil {
		return fmt.Errorf("network %s: %w", plan.Network.Name, err)
	}
	nodes := map[string]*Node{}
	for _, a := range plan.Nodes {
		n := &Node{}
		if err := ctx.RegisterResource(pulumiprovider.NodeToken, a.Name, Inputs(a), n, pulumi.DependsOn([]pulumi.Resource{network})); err != nil {
			return fmt.Errorf("node %s: %w", a.Name, err)
		}
		nodes[a.Name] = n
	}
	// The master's deployment first: a slave registers with it.
	deps := map[string]*Deployment{}
	var master *Deployment
	for _, pass := range []string{spec.RoleMaster, spec.RoleSlave} {
		for _, a := range plan.Deployments {
			if a.Role != pass {
				continue
			}
			after := []pulumi.Resource{nodes[a.Node]}
			if a.Role == spec.RoleSlave && master != nil {
				after = append(after, master)
			}
			d := &Deployment{}
			if err := ctx.RegisterResource(pulumiprovider.DeploymentToken, a.Node, Inputs(a), d, pulumi.DependsOn(after)); err != nil {
				return fmt.Errorf("deployment %s: %w", a.Node, err)
			}
			deps[a.Node] = d
			if a.Role == spec.RoleMaster {
				master = d
			}
		}
	}
	out := pulumi.Map{}
	for _, a := range plan.Nodes {
		n := nodes[a.Name]
		out[a.Name] = pulumi.Map{
			"name":     n.Name,
			"role":     n.Role,
			"address":  n.Address,
			"url":      deps[a.Name].URL,
			"ssh_host": n.SSHHost,
			"ssh_port": n.SSHPort,
		}
	}
	ctx.Export("nodes", out)
	if master != nil {
		ctx.Export("master_url", master.URL)
	}
	return nil
}
