// Package pulumi is the "pulumi" engine of the lab: a Go Pulumi program
// (Program) declaring calclab's resources (the provider plugin
// cmd/pulumi-resource-calclab, over infra/resources) from lab.yaml, driven
// in-process by the Automation API as an inline program.
//
// Everything lives in <state-dir>/pulumi: the stack state in a local file
// backend (file://<state-dir>/pulumi, under .pulumi/), the project
// directory (project/: Pulumi.yaml and the stack's settings), Pulumi's home
// (home/) and the passphrase of the stack's secrets (passphrase, 0600,
// generated per lab unless PULUMI_CONFIG_PASSPHRASE or
// PULUMI_CONFIG_PASSPHRASE_FILE is set). No Pulumi Cloud, no login, no
// plugin download, no update check. The provider plugin is taken from the
// bin dir (a project plugin, and the bin dir first on the CLI's PATH). The
// pulumi CLI is found, never downloaded: $CALCLAB_PULUMI, pulumi on PATH,
// or the one `make tools` builds into ~/.cache/calclab/bin.
//
// A crash in the middle of up leaves the stack locked and, for resources
// being created, updated or deleted, pending operations in the state.
// Every Up, Plan and Down first removes locks whose process is gone (same
// host) and drops pending operations (stack export/import), then refreshes
// the state from the drivers, so the next up re-creates what is missing.
package pulumi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-version"
	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optrefresh"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"

	"github.com/calclab/calclab/infra/engine"
	"github.com/calclab/calclab/infra/pulumiprovider"
	"github.com/calclab/calclab/infra/spec"
)

// ProviderBinary is the name of our provider plugin in the bin dir.
const ProviderBinary = "pulumi-resource-" + pulumiprovider.Name

// Project is the Pulumi project of every lab; the stack is the lab's name.
const Project = "calclab"

// MinVersion is the oldest pulumi CLI the engine accepts.
var MinVersion = version.Must(version.NewVersion("3.200.0"))

// Engine runs one lab through Pulumi.
type Engine struct {
	Spec *spec.Lab
	// StateDir is the lab's state directory (.lab); Pulumi keeps
	// everything in StateDir/pulumi.
	StateDir string
	// BinDir holds the master, slave and pulumi-resource-calclab binaries
	// (and linux-amd64/ for VMs).
	BinDir string
	// Pulumi is the pulumi CLI; empty: FindPulumi.
	Pulumi string
	// Out receives Pulumi's progress and the engine's summaries.
	Out io.Writer
}

// Name is "pulumi".
func (e *Engine) Name() string { return "pulumi" }

var _ engine.Engine = (*Engine)(nil)

// Dir is where the engine keeps everything: the file backend's root.
func (e *Engine) Dir() string { return filepath.Join(e.StateDir, "pulumi") }

// BackendURL is the stack's file backend.
func (e *Engine) BackendURL() string {
	abs, err := filepath.Abs(e.Dir())
	if err != nil {
		abs = e.Dir()
	}
	return "file://" + filepath.ToSlash(abs)
}

func (e *Engine) out() io.Writer {
	if e.Out == nil {
		return io.Discard
	}
	return e.Out
}

// FindPulumi returns a pulumi CLI >= MinVersion: $CALCLAB_PULUMI, then
// PATH, then make tools' ~/.cache/calclab/bin/pulumi ($CALCLAB_TOOLS_BIN).
// It never downloads one.
func FindPulumi(ctx context.Context) (string, error) {
	return engine.CLI{
		Name: "pulumi", EnvVar: "CALCLAB_PULUMI", Min: MinVersion, Version: cliVersion,
		Hint: "run make tools (builds pulumi v3.276.0 into ~/.cache/calclab/bin), or put pulumi >= " + MinVersion.String() + " on PATH",
	}.Find(ctx)
}

func cliVersion(ctx context.Context, path string) (*version.Version, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "version")
	cmd.Env = append(os.Environ(), "PULUMI_SKIP_UPDATE_CHECK=true")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pulumi version: %w", err)
	}
	s := strings.TrimSpace(string(out))
	if s == "" {
		return nil, errors.New("pulumi version printed nothing (a CLI built without its version ldflag)")
	}
	return version.NewVersion(s)
}

// command wraps the CLI for the Automation API, which wants it as
// <root>/bin/pulumi: a CLI elsewhere is linked into Dir()/cli/bin.
func (e *Engine) command(ctx context.Context) (auto.PulumiCommand, error) {
	path := e.Pulumi
	if path == "" {
		var err error
		if path, err = FindPulumi(ctx); err != nil {
			return nil, err
		}
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	exe := "pulumi"
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	root := filepath.Dir(filepath.Dir(path))
	if filepath.Base(path) != exe || filepath.Base(filepath.Dir(path)) != "bin" {
		root = filepath.Join(e.Dir(), "cli")
		link := filepath.Join(root, "bin", exe)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return nil, fmt.Errorf("pulumi: %w", err)
		}
		if old, err := os.Readlink(link); err != nil || old != path {
			_ = os.Remove(link)
			if err := os.Symlink(path, link); err != nil {
				return nil, fmt.Errorf("pulumi: link the CLI %s into %s: %w", path, link, err)
			}
		}
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: root})
	if err != nil {
		return nil, fmt.Errorf("pulumi CLI %s: %w", path, err)
	}
	return cmd, nil
}

// passphraseEnv says where the stack's passphrase comes from: the
// caller's environment, or Dir()/passphrase, generated once (0600).
func (e *Engine) passphraseEnv() (map[string]string, error) {
	if os.Getenv("PULUMI_CONFIG_PASSPHRASE") != "" || os.Getenv("PULUMI_CONFIG_PASSPHRASE_FILE") != "" {
		return map[string]string{}, nil
	}
	file, err := filepath.Abs(filepath.Join(e.Dir(), "passphrase"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("pulumi: passphrase: %w", err)
		}
		if err := os.WriteFile(file, []byte(hex.EncodeToString(b)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("pulumi: passphrase: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("pulumi: passphrase: %w", err)
	}
	return map[string]string{"PULUMI_CONFIG_PASSPHRASE_FILE": file}, nil
}

// stack opens (creating when needed) the lab's stack over the inline
// program.
func (e *Engine) stack(ctx context.Context) (auto.Stack, error) {
	if e.Spec == nil {
		return auto.Stack{}, errors.New("pulumi: no lab spec")
	}
	dir, err := filepath.Abs(e.Dir())
	if err != nil {
		return auto.Stack{}, err
	}
	binDir, err := filepath.Abs(e.BinDir)
	if err != nil {
		return auto.Stack{}, err
	}
	if _, err := os.Stat(filepath.Join(binDir, ProviderBinary)); err != nil {
		return auto.Stack{}, fmt.Errorf("pulumi: our provider plugin is missing: run make build (it builds cmd/%s): %w", ProviderBinary, err)
	}
	project := filepath.Join(dir, "project")
	for _, d := range []string{project, filepath.Join(dir, "home")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return auto.Stack{}, fmt.Errorf("pulumi: %w", err)
		}
	}
	env, err := e.passphraseEnv()
	if err != nil {
		return auto.Stack{}, err
	}
	env["PULUMI_BACKEND_URL"] = e.BackendURL()
	env["PULUMI_HOME"] = filepath.Join(dir, "home")
	env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
	env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
	env["PULUMI_DIY_BACKEND_NO_LEGACY_WARNING"] = "true"
	env["PATH"] = binDir + string(os.PathListSeparator) + os.Getenv("PATH")
	cmd, err := e.command(ctx)
	if err != nil {
		return auto.Stack{}, err
	}
	proj := workspace.Project{
		Name:    tokens.PackageName(Project),
		Runtime: workspace.NewProjectRuntimeInfo("go", nil),
		Backend: &workspace.ProjectBackend{URL: e.BackendURL()},
		Plugins: &workspace.Plugins{Providers: []workspace.PluginOptions{{Name: pulumiprovider.Name, Path: binDir}}},
	}
	desc := "calclab's lab as a Pulumi stack (lab up --engine pulumi)"
	proj.Description = &desc
	st, err := auto.UpsertStackInlineSource(ctx, e.Spec.Name, Project, Program(e.Spec, e.StateDir, e.BinDir),
		auto.WorkDir(project),
		auto.Project(proj),
		auto.Pulumi(cmd),
		auto.EnvVars(env),
		auto.SecretsProvider("passphrase"),
	)
	if err != nil {
		return auto.Stack{}, fmt.Errorf("pulumi: stack %s in %s: %w", e.Spec.Name, e.BackendURL(), err)
	}
	return st, nil
}

// hasState reports whether the lab's stack was ever created.
func (e *Engine) hasState() bool {
	_, err := os.Stat(filepath.Join(e.Dir(), ".pulumi", "stacks"))
	return err == nil
}

// recover makes a stack usable after a crash in the middle of an
// operation: it removes locks left by processes that are gone, drops the
// pending operations recorded in the state and refreshes the state from
// the drivers.
func (e *Engine) recover(ctx context.Context, st auto.Stack) error {
	e.removeStaleLocks()
	dep, err := st.Export(ctx)
	if err != nil {
		return fmt.Errorf("pulumi: stack export: %w", err)
	}
	if len(dep.Deployment) == 0 {
		return nil
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(dep.Deployment, &d); err != nil {
		return fmt.Errorf("pulumi: stack export: %w", err)
	}
	var pending []struct {
		Type     string `json:"type"`
		Resource struct {
			URN string `json:"urn"`
		} `json:"resource"`
	}
	if raw, ok := d["pending_operations"]; ok {
		if err := json.Unmarshal(raw, &pending); err != nil {
			return fmt.Errorf("pulumi: pending operations: %w", err)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	for _, p := range pending {
		slog.Debug("pulumi: dropping a pending operation left by an interrupted run", "op", p.Type, "urn", p.Resource.URN)
		fmt.Fprintf(e.out(), "lab %s: an earlier run was interrupted while %s %s; dropping that pending operation and refreshing\n", e.Spec.Name, p.Type, p.Resource.URN)
	}
	delete(d, "pending_operations")
	if dep.Deployment, err = json.Marshal(d); err != nil {
		return err
	}
	if err := st.Import(ctx, dep); err != nil {
		return fmt.Errorf("pulumi: stack import without the pending operations: %w", err)
	}
	if _, err := st.Refresh(ctx, optrefresh.ProgressStreams(e.out())); err != nil {
		return fmt.Errorf("pulumi: refresh after an interrupted run: %w", err)
	}
	return nil
}

// removeStaleLocks deletes the file backend's stack locks whose process
// (on this host) no longer runs: a crash keeps the stack locked.
func (e *Engine) removeStaleLocks() {
	host, _ := os.Hostname()
	root := filepath.Join(e.Dir(), ".pulumi", "locks")
	_ = filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || !strings.HasSuffix(path, ".json") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var l struct {
			Pid      int    `json:"pid"`
			Hostname string `json:"hostname"`
		}
		if json.Unmarshal(data, &l) != nil || l.Hostname != host || l.Pid <= 0 || alive(l.Pid) {
			return nil
		}
		slog.Debug("pulumi: removing the stack lock of a process that is gone", "pid", l.Pid, "lock", path)
		fmt.Fprintf(e.out(), "lab %s: removing the stack lock left by pulumi process %d, which is gone\n", e.Spec.Name, l.Pid)
		_ = os.Remove(path)
		return nil
	})
}

func alive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	if runtime.GOOS == "windows" {
		return true
	}
	return p.Signal(syscall.Signal(0)) == nil
}

// open is stack plus recover.
func (e *Engine) open(ctx context.Context) (auto.Stack, error) {
	st, err := e.stack(ctx)
	if err != nil {
		return st, err
	}
	if err := e.recover(ctx, st); err != nil {
		return st, err
	}
	return st, nil
}

// Change is one resource in a preview.
type Change struct {
	// Resource is "<type> <name>", e.g. "calclab:index:Node slave-3".
	Resource string
	// Op is Pulumi's operation: create, update, replace, delete.
	Op string
	// Replace names the inputs that force a replacement.
	Replace []string
}

// Plan previews what Up would change (refreshing from the drivers first)
// and prints it; on a lab that matches lab.yaml its last line says "no
// changes".
func (e *Engine) Plan(ctx context.Context) (int, error) {
	changes, err := e.Changes(ctx)
	return len(changes), err
}

// Changes is Plan returning the changes themselves.
func (e *Engine) Changes(ctx context.Context) ([]Change, error) {
	st, err := e.open(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.out(), "pulumi preview of stack %s (%s)\n", e.Spec.Name, e.BackendURL())
	ch := make(chan events.EngineEvent)
	var (
		mu      sync.Mutex
		changes = map[string]*Change{}
		done    = make(chan struct{})
	)
	go func() {
		defer close(done)
		for ev := range ch {
			if ev.ResourcePreEvent == nil {
				continue
			}
			m := ev.ResourcePreEvent.Metadata
			op := string(m.Op)
			switch m.Op {
			case apitype.OpSame, apitype.OpRead, apitype.OpRefresh, apitype.OpReadDiscard, apitype.OpDiscardReplaced, apitype.OpRemovePendingReplace:
				continue
			case apitype.OpCreateReplacement, apitype.OpDeleteReplaced, apitype.OpReplace:
				op = "replace"
			}
			if m.Type == "pulumi:providers:"+pulumiprovider.Name || strings.HasPrefix(m.Type, "pulumi:pulumi:") {
				continue
			}
			mu.Lock()
			key := m.Type + " " + urnName(m.URN)
			c := changes[key]
			if c == nil {
				c = &Change{Resource: key, Op: op}
				changes[key] = c
			}
			if op == "replace" {
				c.Op = op
				c.Replace = mergeKeys(c.Replace, m.Keys)
			}
			mu.Unlock()
		}
	}()
	_, err = st.Preview(ctx, optpreview.ProgressStreams(e.out()), optpreview.EventStreams(ch), optpreview.Refresh())
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	if err != nil {
		return nil, fmt.Errorf("pulumi preview: %w", e.explain(err))
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]Change, 0, len(changes))
	for _, c := range changes {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	e.printChanges(out)
	return out, nil
}

func urnName(urn string) string {
	if i := strings.LastIndex(urn, "::"); i >= 0 {
		return urn[i+2:]
	}
	return urn
}

func mergeKeys(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, k := range append(a, b...) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func (e *Engine) printChanges(changes []Change) {
	if len(changes) == 0 {
		fmt.Fprintf(e.out(), "lab %s: no changes: the lab matches %s\n", e.Spec.Name, labFileName(e.Spec))
		return
	}
	fmt.Fprintf(e.out(), "lab %s: %d resource(s) to change:\n", e.Spec.Name, len(changes))
	for _, c := range changes {
		line := fmt.Sprintf("  %-8s %s", c.Op, c.Resource)
		if len(c.Replace) > 0 {
			line += " (forced by " + strings.Join(c.Replace, ", ") + ")"
		}
		fmt.Fprintln(e.out(), line)
	}
}

func labFileName(l *spec.Lab) string {
	if l.File == "" {
		return "the lab spec"
	}
	return l.File
}

// explain adds what to do to an Automation API error.
func (e *Engine) explain(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("interrupted (the state is kept in %s; run the command again, it recovers pending operations): %w", e.Dir(), err)
	}
	return err
}

// Up refreshes the state from the drivers, then creates or updates every
// resource (Pulumi's progress per resource goes to Out) and returns the
// outputs.
func (e *Engine) Up(ctx context.Context) (engine.Outputs, error) {
	st, err := e.open(ctx)
	if err != nil {
		return engine.Outputs{}, err
	}
	fmt.Fprintf(e.out(), "pulumi up of stack %s (%s)\n", e.Spec.Name, e.BackendURL())
	res, err := st.Up(ctx, optup.ProgressStreams(e.out()), optup.Refresh())
	if err != nil {
		return engine.Outputs{}, fmt.Errorf("pulumi up: %w", e.explain(err))
	}
	if res.Summary.ResourceChanges != nil {
		var parts []string
		for op, n := range *res.Summary.ResourceChanges {
			parts = append(parts, fmt.Sprintf("%s %d", op, n))
		}
		sort.Strings(parts)
		fmt.Fprintf(e.out(), "lab %s: up done: %s\n", e.Spec.Name, strings.Join(parts, ", "))
	}
	return decodeOutputs(res.Outputs)
}

// Down destroys every resource, removes the stack and Dir().
func (e *Engine) Down(ctx context.Context) error {
	if !e.hasState() {
		fmt.Fprintf(e.out(), "lab %s: no pulumi state in %s; nothing to destroy\n", e.Spec.Name, e.Dir())
		return os.RemoveAll(e.Dir())
	}
	st, err := e.open(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out(), "pulumi destroy of stack %s (%s)\n", e.Spec.Name, e.BackendURL())
	if _, err := st.Destroy(ctx, optdestroy.ProgressStreams(e.out()), optdestroy.Refresh()); err != nil {
		return fmt.Errorf("pulumi destroy: %w", e.explain(err))
	}
	if err := st.Workspace().RemoveStack(ctx, st.Name()); err != nil {
		return fmt.Errorf("pulumi stack rm %s: %w", st.Name(), err)
	}
	if err := os.RemoveAll(e.Dir()); err != nil {
		return fmt.Errorf("pulumi: %w", err)
	}
	fmt.Fprintf(e.out(), "lab %s: stack %s removed with its state (%s)\n", e.Spec.Name, st.Name(), e.Dir())
	return nil
}

// Outputs reads the stack's outputs (no refresh, no program run).
func (e *Engine) Outputs(ctx context.Context) (engine.Outputs, error) {
	if !e.hasState() {
		return engine.Outputs{}, fmt.Errorf("lab %s has no pulumi state in %s (run lab up --engine pulumi)", e.Spec.Name, e.Dir())
	}
	st, err := e.stack(ctx)
	if err != nil {
		return engine.Outputs{}, err
	}
	out, err := st.Outputs(ctx)
	if err != nil {
		return engine.Outputs{}, fmt.Errorf("pulumi stack output: %w", err)
	}
	return decodeOutputs(out)
}

// decodeOutputs reads master_url and nodes from the stack's outputs.
func decodeOutputs(out auto.OutputMap) (engine.Outputs, error) {
	var o engine.Outputs
	if v, ok := out["master_url"]; ok {
		s, _ := v.Value.(string)
		o.MasterURL = s
	}
	if v, ok := out["nodes"]; ok {
		data, err := json.Marshal(v.Value)
		if err != nil {
			return o, fmt.Errorf("pulumi output nodes: %w", err)
		}
		if err := json.Unmarshal(data, &o.Nodes); err != nil {
			return o, fmt.Errorf("pulumi output nodes: %w", err)
		}
	}
	return o, nil
}
