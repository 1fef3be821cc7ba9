package tfprovider

import (
	"context"
	"fmt"
	"math/big"
	"reflect"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/calclab/calclab/infra/resources"
)

// modelResource adapts one resource of infra/resources (inputs A, state S,
// where S embeds A) to the framework.
type modelResource[A, S any] struct {
	kind        string
	description string
	id          func(A) string
	check       func(A) error
	create      func(A, context.Context, resources.Log) (S, error)
	read        func(S, context.Context) (S, bool, error)
	diff        func(S, A) resources.Diff
	update      func(S, context.Context, A, resources.Log) (S, error) // nil: every change replaces
	del         func(S, context.Context, resources.Log) error
	args        func(S) A
}

// field is one attribute, mapped to a struct field.
type field struct {
	attr      string // Terraform attribute name
	json      string // the model's field name in Diff (camelCase)
	index     []int
	isInt     bool
	optional  bool
	sensitive bool
}

// reserved are Terraform's meta-arguments, which a resource's attributes
// cannot be called.
var reserved = map[string]string{"provider": "driver"}

func fieldsOf(t reflect.Type, skipEmbedded bool) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			if !skipEmbedded {
				for _, sub := range fieldsOf(f.Type, false) {
					sub.index = append([]int{i}, sub.index...)
					out = append(out, sub)
				}
			}
			continue
		}
		name := f.Tag.Get("tfsdk")
		if name == "" || name == "-" {
			continue
		}
		if r, ok := reserved[name]; ok {
			name = r
		}
		js := strings.Split(f.Tag.Get("json"), ",")
		out = append(out, field{
			attr: name, json: js[0], index: []int{i},
			isInt:     f.Type.Kind() == reflect.Int,
			optional:  strings.Contains(f.Tag.Get("json"), "omitempty"),
			sensitive: f.Tag.Get("provider") == "secret",
		})
	}
	return out
}

func (r *modelResource[A, S]) inputs() []field {
	return fieldsOf(reflect.TypeOf(*new(A)), false)
}

// stateFields are every field of S, the embedded inputs included (their
// indexes relative to S).
func (r *modelResource[A, S]) stateFields() []field {
	return fieldsOf(reflect.TypeOf(*new(S)), false)
}

// outputs are the fields S adds to A.
func (r *modelResource[A, S]) outputs() []field {
	return fieldsOf(reflect.TypeOf(*new(S)), true)
}

func (r *modelResource[A, S]) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_" + r.kind
}

func (r *modelResource[A, S]) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	attrs := map[string]schema.Attribute{
		"id": schema.StringAttribute{
			Computed: true, Description: "The resource's stable identifier (lab/name).",
			PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
		},
	}
	for _, f := range r.inputs() {
		desc := "Input " + f.json + " of the model (infra/resources)."
		if f.isInt {
			attrs[f.attr] = schema.Int64Attribute{Required: !f.optional, Optional: f.optional, Sensitive: f.sensitive, Description: desc}
		} else {
			attrs[f.attr] = schema.StringAttribute{Required: !f.optional, Optional: f.optional, Sensitive: f.sensitive, Description: desc}
		}
	}
	for _, f := range r.outputs() {
		desc := "Output " + f.json + " of the model."
		if f.isInt {
			attrs[f.attr] = schema.Int64Attribute{Computed: true, Description: desc}
		} else {
			attrs[f.attr] = schema.StringAttribute{Computed: true, Description: desc}
		}
	}
	resp.Schema = schema.Schema{Description: r.description, Attributes: attrs}
}

// decode fills a struct of type T from an object value; unknown lists the
// attributes whose value is not known yet (at plan time).
func decode[T any](raw tftypes.Value, fields []field) (T, []field, error) {
	var out T
	var vals map[string]tftypes.Value
	if err := raw.As(&vals); err != nil {
		return out, nil, err
	}
	rv := reflect.ValueOf(&out).Elem()
	var unknown []field
	for _, f := range fields {
		v, ok := vals[f.attr]
		if !ok || v.IsNull() {
			continue
		}
		if !v.IsKnown() {
			unknown = append(unknown, f)
			continue
		}
		if f.isInt {
			var n big.Float
			if err := v.As(&n); err != nil {
				return out, nil, fmt.Errorf("%s: %w", f.attr, err)
			}
			i, _ := n.Int64()
			rv.FieldByIndex(f.index).SetInt(i)
		} else {
			var s string
			if err := v.As(&s); err != nil {
				return out, nil, fmt.Errorf("%s: %w", f.attr, err)
			}
			rv.FieldByIndex(f.index).SetString(s)
		}
	}
	return out, unknown, nil
}

func (r *modelResource[A, S]) objectType() tftypes.Object {
	t := tftypes.Object{AttributeTypes: map[string]tftypes.Type{"id": tftypes.String}}
	for _, f := range append(r.inputs(), r.outputs()...) {
		if f.isInt {
			t.AttributeTypes[f.attr] = tftypes.Number
		} else {
			t.AttributeTypes[f.attr] = tftypes.String
		}
	}
	return t
}

// stateValue is the inputs exactly as planned (so a null optional stays
// null) plus the outputs and id of s.
func (r *modelResource[A, S]) stateValue(inputs tftypes.Value, s S) (tftypes.Value, error) {
	var in map[string]tftypes.Value
	if err := inputs.As(&in); err != nil {
		return tftypes.Value{}, err
	}
	vals := map[string]tftypes.Value{}
	for _, f := range r.inputs() {
		vals[f.attr] = in[f.attr]
	}
	rv := reflect.ValueOf(s)
	for _, f := range r.outputs() {
		fv := rv.FieldByIndex(f.index)
		if f.isInt {
			vals[f.attr] = tftypes.NewValue(tftypes.Number, new(big.Float).SetInt64(fv.Int()))
		} else {
			vals[f.attr] = tftypes.NewValue(tftypes.String, fv.String())
		}
	}
	vals["id"] = tftypes.NewValue(tftypes.String, r.id(r.args(s)))
	return tftypes.NewValue(r.objectType(), vals), nil
}

func (r *modelResource[A, S]) logger(ctx context.Context) resources.Log {
	return func(msg string) { tflog.Info(ctx, msg, map[string]any{"resource": "calclab_" + r.kind}) }
}

// ModifyPlan asks the model which changes force a replacement and checks
// new inputs at plan time.
func (r *modelResource[A, S]) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		return // destroy
	}
	a, unknown, err := decode[A](req.Plan.Raw, r.inputs())
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": reading the plan", err.Error())
		return
	}
	if len(unknown) == 0 {
		if err := r.check(a); err != nil {
			resp.Diagnostics.AddError("calclab_"+r.kind+": invalid inputs", err.Error())
			return
		}
	}
	if req.State.Raw.IsNull() {
		return // create
	}
	s, _, err := decode[S](req.State.Raw, r.stateFields())
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": reading the state", err.Error())
		return
	}
	// An input not known yet counts as changed: mark it so the model says
	// whether that field replaces.
	av := reflect.ValueOf(&a).Elem()
	for _, f := range unknown {
		if f.isInt {
			av.FieldByIndex(f.index).SetInt(-1 << 40)
		} else {
			av.FieldByIndex(f.index).SetString("\x00unknown")
		}
	}
	byJSON := map[string]string{}
	for _, f := range r.inputs() {
		byJSON[f.json] = f.attr
	}
	for _, c := range r.diff(s, a) {
		if c.Replace || r.update == nil {
			resp.RequiresReplace = append(resp.RequiresReplace, path.Root(byJSON[c.Field]))
		}
	}
}

func (r *modelResource[A, S]) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	a, unknown, err := decode[A](req.Plan.Raw, r.inputs())
	if err == nil && len(unknown) > 0 {
		err = fmt.Errorf("input %s is still unknown at apply time", unknown[0].attr)
	}
	if err == nil {
		err = r.check(a)
	}
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": invalid inputs", err.Error())
		return
	}
	s, err := r.create(a, ctx, r.logger(ctx))
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("calclab_%s %s: create failed", r.kind, r.id(a)), err.Error())
		return
	}
	v, err := r.stateValue(req.Plan.Raw, s)
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": state", err.Error())
		return
	}
	resp.State.Raw = v
}

func (r *modelResource[A, S]) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	s, _, err := decode[S](req.State.Raw, r.stateFields())
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": reading the state", err.Error())
		return
	}
	cur, exists, err := r.read(s, ctx)
	if err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("calclab_%s %s: read failed", r.kind, r.id(r.args(s))), err.Error())
		return
	}
	if !exists {
		tflog.Info(ctx, "gone; dropped from the state (the next apply creates it)", map[string]any{"id": r.id(r.args(s))})
		resp.State.RemoveResource(ctx)
		return
	}
	v, err := r.stateValue(req.State.Raw, cur)
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": state", err.Error())
		return
	}
	resp.State.Raw = v
}

func (r *modelResource[A, S]) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	s, _, err := decode[S](req.State.Raw, r.stateFields())
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": reading the state", err.Error())
		return
	}
	a, _, err := decode[A](req.Plan.Raw, r.inputs())
	if err == nil {
		err = r.check(a)
	}
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": invalid inputs", err.Error())
		return
	}
	next := s
	if d := r.diff(s, a); d.HasChanges() {
		if r.update == nil {
			resp.Diagnostics.AddError("calclab_"+r.kind+": cannot update in place", "changes "+d.String()+" replace this resource")
			return
		}
		if next, err = r.update(s, ctx, a, r.logger(ctx)); err != nil {
			resp.Diagnostics.AddError(fmt.Sprintf("calclab_%s %s: update failed", r.kind, r.id(a)), err.Error())
			return
		}
	}
	v, err := r.stateValue(req.Plan.Raw, next)
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": state", err.Error())
		return
	}
	resp.State.Raw = v
}

func (r *modelResource[A, S]) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	s, _, err := decode[S](req.State.Raw, r.stateFields())
	if err != nil {
		resp.Diagnostics.AddError("calclab_"+r.kind+": reading the state", err.Error())
		return
	}
	if err := r.del(s, ctx, r.logger(ctx)); err != nil {
		resp.Diagnostics.AddError(fmt.Sprintf("calclab_%s %s: delete failed", r.kind, r.id(r.args(s))), err.Error())
	}
}

var _ resource.ResourceWithModifyPlan = (*modelResource[resources.NodeArgs, resources.NodeState])(nil)
