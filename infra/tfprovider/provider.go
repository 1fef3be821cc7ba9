// Package tfprovider is calclab's Terraform provider, built with HashiCorp's
// terraform-plugin-framework: the resources calclab_network, calclab_node
// and calclab_deployment, each a thin adapter over infra/resources (the
// model the Pulumi provider wraps too), so Terraform and Pulumi create,
// diff, update and delete the lab the same way.
//
// The schema is derived from the model's structs: every field of an Args
// struct (by its tfsdk tag) is an input, every field a State adds is
// computed. The model's own Diff decides which changes force a
// replacement (ModifyPlan), so the rules live in one place. `provider`
// is a reserved word in Terraform resource blocks: that input is called
// `driver` here.
package tfprovider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"

	"github.com/calclab/calclab/infra/resources"
)

// Address is the provider's source address; Terraform finds it in the
// plugin directory under registry.terraform.io/calclab/calclab.
const Address = "registry.terraform.io/calclab/calclab"

// New returns the provider at version v.
func New(v string) func() provider.Provider {
	return func() provider.Provider { return &calclabProvider{version: v} }
}

type calclabProvider struct{ version string }

func (p *calclabProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "calclab"
	resp.Version = p.version
}

func (p *calclabProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "calclab's lab (a load-balanced calculator: one master, N slaves) as resources over its drivers (local processes, QEMU, Hyper-V). No provider settings: every resource carries the lab's state directory.",
	}
}

func (p *calclabProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {
}

func (p *calclabProvider) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		func() resource.Resource {
			return &modelResource[resources.NetworkArgs, resources.NetworkState]{
				kind:        "network",
				description: "The lab's network (the switch the nodes are on). Every change replaces it.",
				id:          resources.NetworkArgs.ID,
				check:       resources.NetworkArgs.Check,
				create:      resources.NetworkArgs.Create,
				read:        resources.NetworkState.Read,
				diff:        resources.NetworkState.Diff,
				del:         resources.NetworkState.Delete,
				args:        func(s resources.NetworkState) resources.NetworkArgs { return s.NetworkArgs },
			}
		},
		func() resource.Resource {
			return &modelResource[resources.NodeArgs, resources.NodeState]{
				kind:        "node",
				description: "One node of lab.yaml: a VM (qemu, hyperv) or a loopback address (local). Every change replaces it.",
				id:          resources.NodeArgs.ID,
				check:       resources.NodeArgs.Check,
				create:      resources.NodeArgs.Create,
				read:        resources.NodeState.Read,
				diff:        resources.NodeState.Diff,
				del:         resources.NodeState.Delete,
				args:        func(s resources.NodeState) resources.NodeArgs { return s.NodeArgs },
			}
		},
		func() resource.Resource {
			return &modelResource[resources.DeploymentArgs, resources.DeploymentState]{
				kind:        "deployment",
				description: "The calclab service on a node (binary, settings, unit or process). A new binary, policy, token or port updates it in place; another node or role replaces it.",
				id:          resources.DeploymentArgs.ID,
				check:       resources.DeploymentArgs.Check,
				create:      resources.DeploymentArgs.Create,
				read:        resources.DeploymentState.Read,
				diff:        resources.DeploymentState.Diff,
				update:      resources.DeploymentState.Update,
				del:         resources.DeploymentState.Delete,
				args:        func(s resources.DeploymentState) resources.DeploymentArgs { return s.DeploymentArgs },
			}
		},
	}
}

func (p *calclabProvider) DataSources(context.Context) []func() datasource.DataSource { return nil }
