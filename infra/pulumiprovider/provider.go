// Package pulumiprovider is calclab's Pulumi resource provider, built with
// pulumi-go-provider's infer package: the resources calclab:index:Network,
// calclab:index:Node and calclab:index:Deployment, each a thin adapter over
// infra/resources (the model the Terraform provider wraps too), so Pulumi
// and Terraform create, diff, update and delete the lab the same way.
//
// The schema is inferred from the model's structs: an Args struct's fields
// (by their pulumi tags) are the inputs, the fields a State adds are the
// outputs; the deployment's token is a secret. The model's Diff decides
// which changes replace a resource and which update it in place, so the
// rules live in one place. A replacement deletes first: the replacing node
// has the old one's name, directory and port.
package pulumiprovider

import (
	"context"
	"fmt"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"github.com/calclab/calclab/infra/resources"
)

// Name is the provider's package name: its plugin is pulumi-resource-calclab.
const Name = "calclab"

// Version is the provider's version.
const Version = "0.1.0"

// Resource tokens, as a program registers them.
const (
	NetworkToken    = "calclab:index:Network"
	NodeToken       = "calclab:index:Node"
	DeploymentToken = "calclab:index:Deployment"
)

// New builds the provider.
func New() (p.Provider, error) {
	return infer.NewProviderBuilder().
		WithDisplayName("calclab").
		WithDescription("calclab's lab (a load-balanced calculator: one master, N slaves) as resources over its drivers (local processes, QEMU). No provider settings: every resource carries the lab's state directory.").
		WithNamespace("calclab").
		WithResources(
			infer.Resource(&Network{}),
			infer.Resource(&Node{}),
			infer.Resource(&Deployment{}),
		).
		Build()
}

// Run serves the provider to the Pulumi engine that started the plugin.
func Run(ctx context.Context) error {
	prov, err := New()
	if err != nil {
		return fmt.Errorf("calclab provider: %w", err)
	}
	return p.RunProvider(ctx, Name, Version, prov)
}

// logger sends the model's progress lines to the engine as the resource's
// status.
func logger(ctx context.Context) resources.Log {
	l := p.GetLogger(ctx)
	return func(msg string) { l.InfoStatus(msg) }
}

// check runs infer's decoding of the inputs, then the model's own checks.
func check[A any](ctx context.Context, req infer.CheckRequest, validate func(A) error) (infer.CheckResponse[A], error) {
	a, failures, err := infer.DefaultCheck[A](ctx, req.NewInputs)
	if err != nil || len(failures) > 0 {
		return infer.CheckResponse[A]{Inputs: a, Failures: failures}, err
	}
	if err := validate(a); err != nil {
		failures = append(failures, p.CheckFailure{Reason: err.Error()})
	}
	return infer.CheckResponse[A]{Inputs: a, Failures: failures}, nil
}

// diff turns the model's Diff into Pulumi's: each changed input is an
// update or an update&replace; a replacement deletes the old resource
// first.
func diff(d resources.Diff) infer.DiffResponse {
	resp := infer.DiffResponse{HasChanges: d.HasChanges(), DeleteBeforeReplace: d.Replace()}
	if !d.HasChanges() {
		return resp
	}
	resp.DetailedDiff = map[string]p.PropertyDiff{}
	for _, c := range d {
		kind := p.Update
		if c.Replace {
			kind = p.UpdateReplace
		}
		resp.DetailedDiff[c.Field] = p.PropertyDiff{Kind: kind, InputDiff: true}
	}
	return resp
}

// Network is calclab:index:Network, the lab's network.
type Network struct{}

// Annotate describes the resource.
func (r *Network) Annotate(a infer.Annotator) {
	a.SetToken("index", "Network")
	a.Describe(r, "The lab's network (the switch the nodes are on). Every change replaces it.")
}

// Check validates the inputs.
func (*Network) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[resources.NetworkArgs], error) {
	return check(ctx, req, resources.NetworkArgs.Check)
}

// Create records the network (nothing happens in a preview).
func (*Network) Create(ctx context.Context, req infer.CreateRequest[resources.NetworkArgs]) (infer.CreateResponse[resources.NetworkState], error) {
	a := req.Inputs
	if req.DryRun {
		return infer.CreateResponse[resources.NetworkState]{ID: a.ID(), Output: resources.NetworkState{NetworkArgs: a}}, nil
	}
	s, err := a.Create(ctx, logger(ctx))
	if err != nil {
		return infer.CreateResponse[resources.NetworkState]{}, fmt.Errorf("calclab network %s: %w", a.ID(), err)
	}
	return infer.CreateResponse[resources.NetworkState]{ID: a.ID(), Output: s}, nil
}

// Read refreshes the network; an empty ID means it is gone.
func (*Network) Read(ctx context.Context, req infer.ReadRequest[resources.NetworkArgs, resources.NetworkState]) (infer.ReadResponse[resources.NetworkArgs, resources.NetworkState], error) {
	s, ok, err := req.State.Read(ctx)
	if err != nil || !ok {
		return infer.ReadResponse[resources.NetworkArgs, resources.NetworkState]{}, err
	}
	return infer.ReadResponse[resources.NetworkArgs, resources.NetworkState]{ID: req.ID, Inputs: s.NetworkArgs, State: s}, nil
}

// Diff asks the model: every change replaces the network.
func (*Network) Diff(_ context.Context, req infer.DiffRequest[resources.NetworkArgs, resources.NetworkState]) (infer.DiffResponse, error) {
	return diff(req.State.Diff(req.Inputs)), nil
}

// Delete removes what the driver shares between the nodes.
func (*Network) Delete(ctx context.Context, req infer.DeleteRequest[resources.NetworkState]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, req.State.Delete(ctx, logger(ctx))
}

// Node is calclab:index:Node, one node of lab.yaml.
type Node struct{}

// Annotate describes the resource.
func (r *Node) Annotate(a infer.Annotator) {
	a.SetToken("index", "Node")
	a.Describe(r, "One node of lab.yaml: a VM (qemu) or a loopback address (local). Every change replaces it.")
}

// Check validates the inputs.
func (*Node) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[resources.NodeArgs], error) {
	return check(ctx, req, resources.NodeArgs.Check)
}

// Create brings the node up (nothing happens in a preview).
func (*Node) Create(ctx context.Context, req infer.CreateRequest[resources.NodeArgs]) (infer.CreateResponse[resources.NodeState], error) {
	a := req.Inputs
	if req.DryRun {
		return infer.CreateResponse[resources.NodeState]{ID: a.ID(), Output: resources.NodeState{NodeArgs: a}}, nil
	}
	s, err := a.Create(ctx, logger(ctx))
	if err != nil {
		return infer.CreateResponse[resources.NodeState]{}, fmt.Errorf("calclab node %s: %w", a.ID(), err)
	}
	return infer.CreateResponse[resources.NodeState]{ID: a.ID(), Output: s}, nil
}

// Read refreshes the node from the driver; an empty ID means it is gone.
func (*Node) Read(ctx context.Context, req infer.ReadRequest[resources.NodeArgs, resources.NodeState]) (infer.ReadResponse[resources.NodeArgs, resources.NodeState], error) {
	s, ok, err := req.State.Read(ctx)
	if err != nil || !ok {
		return infer.ReadResponse[resources.NodeArgs, resources.NodeState]{}, err
	}
	return infer.ReadResponse[resources.NodeArgs, resources.NodeState]{ID: req.ID, Inputs: s.NodeArgs, State: s}, nil
}

// Diff asks the model: every change replaces the node.
func (*Node) Diff(_ context.Context, req infer.DiffRequest[resources.NodeArgs, resources.NodeState]) (infer.DiffResponse, error) {
	return diff(req.State.Diff(req.Inputs)), nil
}

// Delete stops the node and removes its files.
func (*Node) Delete(ctx context.Context, req infer.DeleteRequest[resources.NodeState]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, req.State.Delete(ctx, logger(ctx))
}

// Deployment is calclab:index:Deployment, the service on one node.
type Deployment struct{}

// Annotate describes the resource.
func (r *Deployment) Annotate(a infer.Annotator) {
	a.SetToken("index", "Deployment")
	a.Describe(r, "The calclab service on a node (binary, settings, unit or process). A new binary, policy, token or port updates it in place; another node or role replaces it.")
}

// Check validates the inputs.
func (*Deployment) Check(ctx context.Context, req infer.CheckRequest) (infer.CheckResponse[resources.DeploymentArgs], error) {
	return check(ctx, req, resources.DeploymentArgs.Check)
}

// Create deploys the service and waits until it answers (nothing happens
// in a preview).
func (*Deployment) Create(ctx context.Context, req infer.CreateRequest[resources.DeploymentArgs]) (infer.CreateResponse[resources.DeploymentState], error) {
	a := req.Inputs
	if req.DryRun {
		return infer.CreateResponse[resources.DeploymentState]{ID: a.ID(), Output: resources.DeploymentState{DeploymentArgs: a}}, nil
	}
	s, err := a.Create(ctx, logger(ctx))
	if err != nil {
		return infer.CreateResponse[resources.DeploymentState]{}, fmt.Errorf("calclab deployment %s: %w", a.ID(), err)
	}
	return infer.CreateResponse[resources.DeploymentState]{ID: a.ID(), Output: s}, nil
}

// Read refreshes the deployment; an empty ID means its service is gone.
func (*Deployment) Read(ctx context.Context, req infer.ReadRequest[resources.DeploymentArgs, resources.DeploymentState]) (infer.ReadResponse[resources.DeploymentArgs, resources.DeploymentState], error) {
	s, ok, err := req.State.Read(ctx)
	if err != nil || !ok {
		return infer.ReadResponse[resources.DeploymentArgs, resources.DeploymentState]{}, err
	}
	return infer.ReadResponse[resources.DeploymentArgs, resources.DeploymentState]{ID: req.ID, Inputs: s.DeploymentArgs, State: s}, nil
}

// Diff asks the model: the node, role or provider replace the deployment,
// everything else updates it in place.
func (*Deployment) Diff(_ context.Context, req infer.DiffRequest[resources.DeploymentArgs, resources.DeploymentState]) (infer.DiffResponse, error) {
	return diff(req.State.Diff(req.Inputs)), nil
}

// Update applies new inputs in place (nothing happens in a preview).
func (*Deployment) Update(ctx context.Context, req infer.UpdateRequest[resources.DeploymentArgs, resources.DeploymentState]) (infer.UpdateResponse[resources.DeploymentState], error) {
	if req.DryRun {
		s := req.State
		s.DeploymentArgs = req.Inputs
		return infer.UpdateResponse[resources.DeploymentState]{Output: s}, nil
	}
	s, err := req.State.Update(ctx, req.Inputs, logger(ctx))
	if err != nil {
		return infer.UpdateResponse[resources.DeploymentState]{}, fmt.Errorf("calclab deployment %s: %w", req.Inputs.ID(), err)
	}
	return infer.UpdateResponse[resources.DeploymentState]{Output: s}, nil
}

// Delete stops the service.
func (*Deployment) Delete(ctx context.Context, req infer.DeleteRequest[resources.DeploymentState]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, req.State.Delete(ctx, logger(ctx))
}
