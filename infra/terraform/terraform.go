// Package terraform is the "terraform" engine of the lab: it drives the
// terraform CLI from Go with hashicorp/terraform-exec over the
// configuration in calclab/ (calclab's own provider,
// cmd/terraform-provider-calclab, which wraps infra/resources).
//
// Everything lives in <state-dir>/terraform: main.tf, variables.tf and
// outputs.tf (embedded here, written on every run), terraform.tfvars.json
// (from lab.yaml), token.auto.tfvars.json (0600), the plugin directory that
// holds our provider in Terraform's layout
// (plugins/registry.terraform.io/calclab/calclab/<version>/<os>_<arch>/),
// and terraform.tfstate. `terraform init -plugin-dir` installs the provider
// from there: no registry, no network. The terraform binary is found, never
// downloaded: $CALCLAB_TERRAFORM, a terraform >= 1.5 on PATH, or the one
// `make tools` builds into ~/.cache/calclab/bin.
package terraform

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/calclab/calclab/infra/engine"
	"github.com/calclab/calclab/infra/spec"
)

//go:embed calclab/*.tf
var config embed.FS

// ProviderVersion is the version our provider is installed under in the
// plugin directory.
const ProviderVersion = "0.1.0"

// ProviderBinary is the name of our provider's executable in the bin dir.
const ProviderBinary = "terraform-provider-calclab"

// MinVersion is the oldest terraform CLI the engine accepts.
var MinVersion = version.Must(version.NewVersion("1.5.0"))

// Engine runs one lab through Terraform.
type Engine struct {
	Spec *spec.Lab
	// StateDir is the lab's state directory (.lab); Terraform works in
	// StateDir/terraform.
	StateDir string
	// BinDir holds the master, slave and terraform-provider-calclab
	// binaries (and linux-amd64/ for VMs).
	BinDir string
	// Terraform is the terraform binary; empty: FindTerraform.
	Terraform string
	// Out receives Terraform's own progress and the engine's summaries.
	Out io.Writer
}

// Name is "terraform".
func (e *Engine) Name() string { return "terraform" }

var _ engine.Engine = (*Engine)(nil)

// Dir is the Terraform working directory.
func (e *Engine) Dir() string { return filepath.Join(e.StateDir, "terraform") }

// FindTerraform returns a terraform >= MinVersion: $CALCLAB_TERRAFORM, then
// PATH, then make tools' ~/.cache/calclab/bin/terraform ($CALCLAB_TOOLS_BIN). It never
// downloads one.
func FindTerraform(ctx context.Context) (string, error) {
	return engine.CLI{
		Name: "terraform", EnvVar: "CALCLAB_TERRAFORM", Min: MinVersion, Version: binaryVersion,
		Hint: "run make tools (builds terraform v1.5.7 into ~/.cache/calclab/bin), or put terraform >= 1.5 on PATH",
	}.Find(ctx)
}

func binaryVersion(ctx context.Context, path string) (*version.Version, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	tf, err := tfexec.NewTerraform(os.TempDir(), path)
	if err != nil {
		return nil, err
	}
	v, _, err := tf.Version(ctx, true)
	return v, err
}

// prepare writes the configuration, the variables and the plugin directory
// and returns a tfexec handle on the working directory.
func (e *Engine) prepare(ctx context.Context) (*tfexec.Terraform, error) {
	dir := e.Dir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	files, err := fs.Glob(config, "calclab/*.tf")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		data, err := config.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := writeIfChanged(filepath.Join(dir, filepath.Base(f)), data, 0o644); err != nil {
			return nil, fmt.Errorf("terraform: %w", err)
		}
	}
	vars, err := VarsFor(e.Spec, e.StateDir, e.BinDir)
	if err != nil {
		return nil, err
	}
	data, _ := json.MarshalIndent(vars, "", "  ")
	if err := writeIfChanged(filepath.Join(dir, "terraform.tfvars.json"), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	tok, _ := json.Marshal(map[string]string{"token": e.Spec.Services.Token})
	if err := writeIfChanged(filepath.Join(dir, "token.auto.tfvars.json"), append(tok, '\n'), 0o600); err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	if err := e.installProvider(); err != nil {
		return nil, err
	}
	path := e.Terraform
	if path == "" {
		if path, err = FindTerraform(ctx); err != nil {
			return nil, err
		}
	}
	tf, err := tfexec.NewTerraform(dir, path)
	if err != nil {
		return nil, fmt.Errorf("terraform: %w", err)
	}
	env := tfexec.CleanEnv(envMap(os.Environ()))
	env["CHECKPOINT_DISABLE"] = "1" // no version check against the network
	if err := tf.SetEnv(env); err != nil {
		return nil, err
	}
	return tf, nil
}

// PluginDir is where the provider is installed for `terraform init
// -plugin-dir`.
func (e *Engine) PluginDir() string { return filepath.Join(e.Dir(), "plugins") }

// installProvider copies bin/terraform-provider-calclab into the plugin
// directory in Terraform's layout (when it changed).
func (e *Engine) installProvider() error {
	src := filepath.Join(e.BinDir, ProviderBinary)
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("terraform: our provider %s is missing: run make build (it builds cmd/terraform-provider-calclab): %w", src, err)
	}
	dst := filepath.Join(e.PluginDir(), "registry.terraform.io", "calclab", "calclab", ProviderVersion,
		runtime.GOOS+"_"+runtime.GOARCH, ProviderBinary+"_v"+ProviderVersion)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("terraform: %w", err)
	}
	return writeIfChanged(dst, data, 0o755)
}

func writeIfChanged(path string, data []byte, mode os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return os.Chmod(path, mode)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func envMap(environ []string) map[string]string {
	m := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// init runs terraform init against the plugin directory only. -upgrade
// lets a rebuilt provider replace the one recorded in the lock file.
func (e *Engine) init(ctx context.Context, tf *tfexec.Terraform) error {
	var stderr bytes.Buffer
	tf.SetStdout(io.Discard)
	tf.SetStderr(&stderr)
	err := tf.Init(ctx, tfexec.PluginDir(e.PluginDir()), tfexec.Upgrade(true), tfexec.Backend(true))
	return e.failed("init", err, &stderr)
}

// failed turns a terraform error into one readable error: Terraform's own
// diagnostics (stderr) without the box drawing, then the command.
func (e *Engine) failed(cmd string, err error, stderr *bytes.Buffer) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("terraform %s: interrupted (state is kept in %s; run the command again): %w", cmd, e.Dir(), err)
	}
	msg := Diagnostics(stderr.String())
	if msg == "" {
		msg = err.Error()
	}
	return fmt.Errorf("terraform %s failed (working directory %s):\n%s", cmd, e.Dir(), msg)
}

// Diagnostics makes Terraform's stderr readable in one error: it drops the
// box-drawing margin of its diagnostics and blank runs.
func Diagnostics(stderr string) string {
	var out []string
	blank := false
	for _, line := range strings.Split(stderr, "\n") {
		line = strings.TrimRight(line, " \r")
		for _, p := range []string{"╷", "╵", "│ ", "│"} {
			if strings.HasPrefix(line, p) {
				line = strings.TrimPrefix(line, p)
				break
			}
		}
		if strings.TrimSpace(line) == "" {
			if !blank && len(out) > 0 {
				out = append(out, "")
			}
			blank = true
			continue
		}
		blank = false
		out = append(out, "  "+line)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n ")
}

// run streams a terraform command's stdout to Out and keeps its stderr
// for the error.
func (e *Engine) run(cmd string, tf *tfexec.Terraform, fn func() error) error {
	var stderr bytes.Buffer
	tf.SetStdout(e.Out)
	tf.SetStderr(&stderr)
	return e.failed(cmd, fn(), &stderr)
}

func (e *Engine) varFiles() []string {
	return []string{filepath.Join(e.Dir(), "terraform.tfvars.json")}
}

// Change is one resource in a plan.
type Change struct {
	Address string
	Actions string // create, update, delete, replace, read
	// Replace names the attributes that force a replacement.
	Replace []string
}

// Plan runs init and plan and prints what up would change; on a lab that
// matches lab.yaml its last line says "no changes".
func (e *Engine) Plan(ctx context.Context) (int, error) {
	changes, err := e.Changes(ctx)
	return len(changes), err
}

// Changes is Plan returning the changes themselves.
func (e *Engine) Changes(ctx context.Context) ([]Change, error) {
	tf, err := e.prepare(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.init(ctx, tf); err != nil {
		return nil, err
	}
	planFile := filepath.Join(e.Dir(), "lab.tfplan")
	defer os.Remove(planFile)
	fmt.Fprintf(e.Out, "terraform plan in %s\n", e.Dir())
	var has bool
	if err := e.run("plan", tf, func() error {
		var err error
		has, err = tf.Plan(ctx, tfexec.VarFile(e.varFiles()[0]), tfexec.Out(planFile))
		return err
	}); err != nil {
		return nil, err
	}
	var changes []Change
	if has {
		tf.SetStdout(io.Discard)
		p, err := tf.ShowPlanFile(ctx, planFile)
		if err != nil {
			return nil, fmt.Errorf("terraform show: %w", err)
		}
		changes = summarize(p)
	}
	e.printChanges(changes)
	return changes, nil
}

func summarize(p *tfjson.Plan) []Change {
	var out []Change
	for _, rc := range p.ResourceChanges {
		a := rc.Change.Actions
		var act string
		switch {
		case a.NoOp() || a.Read():
			continue
		case a.Create():
			act = "create"
		case a.Update():
			act = "update in place"
		case a.Delete():
			act = "delete"
		case a.Replace():
			act = "replace"
		default:
			act = fmt.Sprint(a)
		}
		c := Change{Address: rc.Address, Actions: act}
		for _, rp := range rc.Change.ReplacePaths {
			if path, ok := rp.([]any); ok && len(path) > 0 {
				c.Replace = append(c.Replace, fmt.Sprint(path[0]))
			}
		}
		sort.Strings(c.Replace)
		out = append(out, c)
	}
	return out
}

func (e *Engine) printChanges(changes []Change) {
	if len(changes) == 0 {
		fmt.Fprintf(e.Out, "lab %s: no changes: the lab matches %s\n", e.Spec.Name, labFileName(e.Spec))
		return
	}
	fmt.Fprintf(e.Out, "lab %s: %d resource(s) to change:\n", e.Spec.Name, len(changes))
	for _, c := range changes {
		line := fmt.Sprintf("  %-16s %s", c.Actions, c.Address)
		if len(c.Replace) > 0 {
			line += " (forced by " + strings.Join(c.Replace, ", ") + ")"
		}
		fmt.Fprintln(e.Out, line)
	}
}

func labFileName(l *spec.Lab) string {
	if l.File == "" {
		return "the lab spec"
	}
	return l.File
}

// Up runs init, plan and apply (Terraform's progress per resource goes to
// Out) and returns the outputs.
func (e *Engine) Up(ctx context.Context) (Outputs, error) {
	tf, err := e.prepare(ctx)
	if err != nil {
		return Outputs{}, err
	}
	if err := e.init(ctx, tf); err != nil {
		return Outputs{}, err
	}
	fmt.Fprintf(e.Out, "terraform apply in %s\n", e.Dir())
	if err := e.run("apply", tf, func() error {
		return tf.Apply(ctx, tfexec.VarFile(e.varFiles()[0]))
	}); err != nil {
		return Outputs{}, err
	}
	return e.outputs(ctx, tf)
}

// Down destroys every resource and removes the working directory.
func (e *Engine) Down(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(e.Dir(), "terraform.tfstate")); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(e.Out, "lab %s: no terraform state in %s; nothing to destroy\n", e.Spec.Name, e.Dir())
		return os.RemoveAll(e.Dir())
	}
	tf, err := e.prepare(ctx)
	if err != nil {
		return err
	}
	if err := e.init(ctx, tf); err != nil {
		return err
	}
	fmt.Fprintf(e.Out, "terraform destroy in %s\n", e.Dir())
	if err := e.run("destroy", tf, func() error {
		return tf.Destroy(ctx, tfexec.VarFile(e.varFiles()[0]))
	}); err != nil {
		return err
	}
	return os.RemoveAll(e.Dir())
}

// NodeOutput is one node in the outputs.
type NodeOutput = engine.NodeOutput

// Outputs are the configuration's outputs.
type Outputs = engine.Outputs

// Outputs reads the outputs of the last apply (no init, no refresh).
func (e *Engine) Outputs(ctx context.Context) (Outputs, error) {
	if _, err := os.Stat(filepath.Join(e.Dir(), "terraform.tfstate")); err != nil {
		return Outputs{}, fmt.Errorf("lab %s has no terraform state in %s (run lab up --engine terraform): %w", e.Spec.Name, e.Dir(), err)
	}
	tf, err := e.prepare(ctx)
	if err != nil {
		return Outputs{}, err
	}
	return e.outputs(ctx, tf)
}

func (e *Engine) outputs(ctx context.Context, tf *tfexec.Terraform) (Outputs, error) {
	var stderr bytes.Buffer
	tf.SetStdout(io.Discard)
	tf.SetStderr(&stderr)
	out, err := tf.Output(ctx)
	if err != nil {
		return Outputs{}, e.failed("output", err, &stderr)
	}
	var o Outputs
	if m, ok := out["master_url"]; ok {
		if err := json.Unmarshal(m.Value, &o.MasterURL); err != nil {
			return Outputs{}, fmt.Errorf("terraform output master_url: %w", err)
		}
	}
	if m, ok := out["nodes"]; ok {
		if err := json.Unmarshal(m.Value, &o.Nodes); err != nil {
			return Outputs{}, fmt.Errorf("terraform output nodes: %w", err)
		}
	}
	return o, nil
}
