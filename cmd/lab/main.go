// Command lab brings a calclab lab up and down from lab.yaml and looks into
// its nodes: up, down, status, logs, ssh, ssh-config, plan, deploy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/hyperv"
	"github.com/calclab/calclab/infra/driver/local"
	"github.com/calclab/calclab/infra/driver/qemu"
	"github.com/calclab/calclab/infra/lab"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/envflag"
)

// verb is one subcommand: its usage line and what it does.
type verb struct {
	usage string // after "lab [flags] "
	help  string
}

var verbs = map[string]verb{
	"up":         {"up", "start every node, wait until the master is healthy and every slave registered, print a status table"},
	"down":       {"down", "stop every node and remove the lab's files (idempotent)"},
	"status":     {"status [--json]", "table of nodes: role, pid, address, health, in-flight, tasks done; exits 1 when a node is not ok"},
	"logs":       {"logs NODE [-f] [--console]", "print (and follow) a node's service log (VMs: its journal; --console: the serial console)"},
	"ssh":        {"ssh NODE [-- CMD...]", "shell or command on a node (VM providers)"},
	"ssh-config": {"ssh-config", "OpenSSH config for the lab's VMs: ssh -F .lab/ssh_config slave-1"},
	"deploy":     {"deploy", "(re)install the services on the VMs over SSH; idempotent (native engine)"},
	"validate":   {"validate [--json]", "check lab.yaml (and the flags) and print the nodes"},
	"plan":       {"plan [--out DIR]", "what up would do, doing nothing: the engines' preview (ends in \"no changes\" on a converged lab); hyperv: the PowerShell scripts (--out writes NN-step.ps1 files and each node's seed)"},
	"version":    {"version", "print lab's version"},
	"info":       {"info NODE [--json]", "one node: role, address, pid or VM, health, log, SSH target, its service's settings"},
	"exec":       {"exec NODE -- CMD [ARGS...]", "run a command on a node: over SSH on a VM; local: in the node's directory with its service's environment"},
	"start":      {"start NODE", "start one stopped node (and the master, which slaves need) and wait until it is ready"},
	"stop":       {"stop NODE", "stop one node, keeping its files (lab start NODE brings it back)"},
	"restart":    {"restart NODE", "stop and start one node"},
	"completion": {"completion bash|zsh|fish", "shell completion script: source <(lab completion bash)"},
	"help":       {"help [COMMAND]", "this text, or one command's"},
}

func summary() string {
	var b strings.Builder
	b.WriteString("lab: bring a calclab lab (one master, N slaves) up and down from lab.yaml.\n\nUsage: lab [flags] COMMAND [args] (flags go before or after the command)\n\nCommands:\n")
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %-28s %s\n", verbs[n].usage, verbs[n].help)
	}
	b.WriteString("\nProviders: local (default: processes on 127.0.0.1, no root, no network), qemu, hyperv.\n")
	b.WriteString("Engines:   native (default: lab drives the provider itself), terraform, pulumi\n")
	b.WriteString("           (the same resources through Terraform or Pulumi, state in the state dir).")
	return b.String()
}

func main() { envflag.Exit("lab", run(os.Args[1:], os.Stdout)) }

// globals are the flags every command takes.
type globals struct {
	file, provider, stateDir, binDir, engine string
	version                                  bool
}

func globalFlags(g *globals) *flag.FlagSet {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.StringVar(&g.file, "file", "lab.yaml", "lab spec to read")
	fs.StringVar(&g.provider, "provider", "", "provider to use instead of the spec's: "+strings.Join(spec.Providers, ", "))
	fs.StringVar(&g.stateDir, "state-dir", ".lab", "directory of the lab's state, logs and data")
	fs.StringVar(&g.binDir, "bin-dir", "", "directory of the master and slave binaries (default: the lab binary's own)")
	fs.StringVar(&g.engine, "engine", "", "how the lab is built: "+strings.Join(engineNames(), ", ")+" (default: the one that brought the lab up, else native)")
	fs.BoolVar(&g.version, "version", false, "print lab's version and exit")
	return fs
}

func engineNames() []string {
	names := []string{"native"}
	for n := range engines {
		names = append(names, n)
	}
	sort.Strings(names[1:])
	return names
}

// splitArgs separates the global flags (wherever they are) from the
// command and its own arguments; everything after "--" is the command's.
func splitArgs(fs *flag.FlagSet, args []string) (global []string, cmd string, rest []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if name == "h" || name == "help" {
				global = append(global, a)
				continue
			}
			if f := fs.Lookup(name); f != nil {
				global = append(global, a)
				if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && bf.IsBoolFlag()) && i+1 < len(args) {
					global = append(global, args[i+1])
					i++
				}
				continue
			}
		}
		if cmd == "" && !strings.HasPrefix(a, "-") {
			cmd = a
			continue
		}
		rest = append(rest, a)
	}
	return global, cmd, rest
}

func run(args []string, out io.Writer) error {
	var g globals
	fs := globalFlags(&g)
	global, cmd, rest := splitArgs(fs, args)
	fs.SetOutput(out)
	if err := envflag.Parse(fs, summary(), global, os.Getenv); err != nil {
		return err
	}
	if g.version || cmd == "version" {
		fmt.Fprintln(out, versionLine())
		return nil
	}
	switch cmd {
	case "":
		fs.Usage()
		return errors.New("missing command (see the list above)")
	case "help":
		if len(rest) == 0 {
			fs.Usage()
			return nil
		}
		v, ok := verbs[rest[0]]
		if !ok {
			return unknownCommand(rest[0])
		}
		fmt.Fprintf(out, "Usage: lab [flags] %s\n\n%s\n\nFlags: see lab help\n", v.usage, v.help)
		return nil
	}
	if cmd == "completion" {
		return completion(out, rest)
	}
	if _, ok := verbs[cmd]; !ok && cmd != completeNodes {
		return unknownCommand(cmd)
	}
	if g.provider != "" && !contains(spec.Providers, g.provider) {
		return fmt.Errorf("--provider %q: use one of %s", g.provider, strings.Join(spec.Providers, ", "))
	}
	if g.engine != "" && !contains(engineNames(), g.engine) {
		return fmt.Errorf("--engine %q: use one of %s", g.engine, strings.Join(engineNames(), ", "))
	}
	c, err := newCLI(&g, cmd, out)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if c.eng != "native" {
		if handled, err := c.runEngine(ctx, cmd, rest); handled {
			return err
		}
	}
	return c.runNative(ctx, cmd, rest)
}

func unknownCommand(cmd string) error {
	return fmt.Errorf("unknown command %q: use one of %s (lab help COMMAND)", cmd, strings.Join(verbNames(), ", "))
}

func verbNames() []string {
	names := make([]string, 0, len(verbs))
	for n := range verbs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func versionLine() string {
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = " " + s.Value[:12]
			}
		}
	}
	return fmt.Sprintf("lab %s%s (%s %s/%s)", v, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// cli is one command's lab: its spec, state dir and engine.
type cli struct {
	g            *globals
	spec         *spec.Lab
	dir          string // absolute state dir
	eng          string // native, terraform, pulumi
	lab          *lab.Lab
	drv          driver.Driver
	out          io.Writer
	providerFile string
	engineFile   string
}

func newCLI(g *globals, cmd string, out io.Writer) (*cli, error) {
	s, err := spec.Load(g.file)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(g.stateDir)
	if err != nil {
		return nil, err
	}
	c := &cli{g: g, spec: s, dir: dir, out: out, providerFile: filepath.Join(dir, "provider"), engineFile: filepath.Join(dir, "engine")}
	// The provider and engine that brought the lab up stay in charge until
	// down, so `lab up --provider qemu` followed by `lab status` speaks to
	// the VMs.
	provider := g.provider
	if b, err := os.ReadFile(c.providerFile); err == nil {
		was := strings.TrimSpace(string(b))
		if provider != "" && provider != was && cmd != "validate" {
			return nil, fmt.Errorf("the lab in %s runs on the %s provider: take it down first (lab down) or use another --state-dir", g.stateDir, was)
		}
		provider = was
	}
	c.eng = g.engine
	if b, err := os.ReadFile(c.engineFile); err == nil {
		was := strings.TrimSpace(string(b))
		if c.eng != "" && c.eng != was && cmd != "validate" {
			return nil, fmt.Errorf("the lab in %s is managed by the %s engine: mixing engines on one state dir is refused; take it down with `lab down` first, or use another --state-dir", g.stateDir, was)
		}
		c.eng = was
	}
	if c.eng == "" {
		c.eng = "native"
	}
	if provider != "" && provider != s.Provider {
		s.Provider = provider
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	if g.binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find binaries: %w (set --bin-dir)", err)
		}
		g.binDir = filepath.Dir(exe)
	}
	// Only the verbs that start services make a token; the others read it.
	token := lab.ReadToken
	if cmd == "up" || cmd == "deploy" || cmd == "plan" {
		token = lab.EnsureToken
	}
	tokenFile, err := token(s, dir)
	if err != nil {
		return nil, err
	}
	if c.drv, err = newDriver(s.Provider, dir, g.binDir); err != nil {
		return nil, err
	}
	c.lab = &lab.Lab{Spec: s, Driver: c.drv, Out: out, LinuxBinDir: filepath.Join(g.binDir, "linux-amd64"), StateDir: dir, TokenFile: tokenFile}
	return c, nil
}

// remember records the provider and engine in charge of the state dir.
func (c *cli) remember() error {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(c.providerFile, []byte(c.spec.Provider+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(c.engineFile, []byte(c.eng+"\n"), 0o644)
}

// forget removes what remember wrote, and the state dir once it is empty.
func (c *cli) forget() {
	_ = os.Remove(c.providerFile)
	_ = os.Remove(c.engineFile)
	_ = os.Remove(c.dir) // only when empty
}

func (c *cli) runNative(ctx context.Context, cmd string, args []string) error {
	l, s, out := c.lab, c.spec, c.out
	switch cmd {
	case "up":
		return noArgs(cmd, args, func() error {
			if err := c.remember(); err != nil {
				return err
			}
			if err := l.Up(ctx); err != nil {
				l.ExplainFailure(ctx, out)
				return err
			}
			return nil
		})
	case "down":
		return noArgs(cmd, args, func() error {
			if err := l.Down(ctx); err != nil {
				return err
			}
			c.forget()
			return nil
		})
	case "status":
		sf := flag.NewFlagSet("status", flag.ContinueOnError)
		asJSON := sf.Bool("json", false, "print JSON instead of a table")
		if err := parseVerb(sf, cmd, args, 0); err != nil {
			return err
		}
		bad, err := l.Status(ctx, *asJSON)
		if err != nil {
			return err
		}
		if len(bad) == len(s.Nodes) && allStopped(bad) {
			return fmt.Errorf("lab %s is not up (lab up starts it)", s.Name)
		}
		if len(bad) > 0 {
			return fmt.Errorf("lab %s is not healthy: %s", s.Name, strings.Join(bad, ", "))
		}
		return nil
	case "logs":
		lf := flag.NewFlagSet("logs", flag.ContinueOnError)
		follow := lf.Bool("f", false, "follow the log")
		console := lf.Bool("console", false, "VM providers: the serial console instead of the service journal")
		node, largs := firstArg(args)
		if err := parseVerb(lf, cmd, largs, 1); err != nil {
			return err
		}
		if node == "" {
			node = lf.Arg(0)
		}
		if node == "" {
			return fmt.Errorf("usage: lab logs NODE [-f] (nodes: %v)", s.NodeNames())
		}
		if *console {
			return l.Console(ctx, node, *follow, out)
		}
		return l.Logs(ctx, node, *follow, out)
	case "ssh":
		node, sargs := firstArg(args)
		if node == "" {
			return fmt.Errorf("usage: lab ssh NODE [-- CMD...] (nodes: %v)", s.NodeNames())
		}
		if len(sargs) > 0 && sargs[0] == "--" {
			sargs = sargs[1:]
		}
		return l.SSH(ctx, node, sargs, os.Stdin, os.Stdout, os.Stderr)
	case "ssh-config":
		return noArgs(cmd, args, func() error {
			text, err := l.SSHConfig()
			if err != nil {
				return err
			}
			fmt.Fprint(out, text)
			return nil
		})
	case "plan":
		pf := flag.NewFlagSet("plan", flag.ContinueOnError)
		outDir := pf.String("out", "", "write the plan's files to this directory")
		if err := parseVerb(pf, cmd, args, 0); err != nil {
			return err
		}
		if !c.drv.Info().Plan {
			return fmt.Errorf("plan with the %s provider and the native engine: %w (use --provider hyperv, or --engine %s)", c.drv.Info().Name, driver.ErrUnsupported, strings.Join(engineNames()[1:], "|"))
		}
		return c.drv.Plan(ctx, s, out, *outDir)
	case "deploy":
		return noArgs(cmd, args, func() error { return l.Deploy(ctx) })
	case "info":
		f := flag.NewFlagSet("info", flag.ContinueOnError)
		asJSON := f.Bool("json", false, "print JSON")
		node, err := nodeArg(f, cmd, args)
		if err != nil {
			return err
		}
		return l.PrintInfo(ctx, node, *asJSON)
	case "start", "stop", "restart":
		node, err := nodeArg(flag.NewFlagSet(cmd, flag.ContinueOnError), cmd, args)
		if err != nil {
			return err
		}
		switch cmd {
		case "start":
			return l.Start(ctx, node)
		case "stop":
			return l.Stop(ctx, node)
		}
		return l.Restart(ctx, node)
	case "exec":
		node, xargs := firstArg(args)
		if node == "" || len(xargs) < 2 || xargs[0] != "--" {
			return fmt.Errorf("usage: lab exec NODE -- CMD [ARGS...] (nodes: %s)", strings.Join(s.NodeNames(), ", "))
		}
		return l.Exec(ctx, node, xargs[1:], os.Stdin, os.Stdout, os.Stderr)
	case completeNodes:
		for _, n := range s.NodeNames() {
			fmt.Fprintln(out, n)
		}
		return nil
	case "validate":
		vf := flag.NewFlagSet("validate", flag.ContinueOnError)
		asJSON := vf.Bool("json", false, "print the checked lab as JSON")
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			return noArgs(cmd, args, nil)
		}
		if err := parseVerb(vf, cmd, args, 0); err != nil {
			return err
		}
		if *asJSON {
			type node struct {
				Name, Role, IP, URL string
			}
			v := struct {
				File, Name, Provider, Engine, Network string
				Nodes                                 []node
			}{s.File, s.Name, s.Provider, c.eng, s.Network.CIDR, nil}
			for _, n := range s.Nodes {
				v.Nodes = append(v.Nodes, node{n.Name, n.Role, n.IP, local.URL(s, n)})
			}
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		fmt.Fprintf(out, "%s: ok: lab %s, provider %s, engine %s, network %s\n", s.File, s.Name, s.Provider, c.eng, s.Network.CIDR)
		for _, n := range s.Nodes {
			fmt.Fprintf(out, "  %-10s %-7s %-15s local %s\n", n.Name, n.Role, n.IP, local.URL(s, n))
		}
		return nil
	}
	return unknownCommand(cmd)
}

// nodeArg parses a command that takes one NODE (flags before or after it).
func nodeArg(fs *flag.FlagSet, cmd string, args []string) (string, error) {
	node, rest := firstArg(args)
	if err := parseVerb(fs, cmd, rest, 1); err != nil {
		return "", err
	}
	if node == "" {
		node = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return "", fmt.Errorf("%s: unexpected argument %q (lab help %s)", cmd, fs.Arg(0), cmd)
	}
	if node == "" {
		return "", fmt.Errorf("usage: lab %s", verbs[cmd].usage)
	}
	return node, nil
}

// allStopped reports whether every "node health" entry is "stopped".
func allStopped(bad []string) bool {
	for _, b := range bad {
		if !strings.HasSuffix(b, " stopped") {
			return false
		}
	}
	return true
}

// parseVerb parses a command's own flags and allows at most maxArgs
// positional arguments.
func parseVerb(fs *flag.FlagSet, cmd string, args []string, maxArgs int) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: "); ok {
			return fmt.Errorf("%s: unknown flag -%s (lab help %s; global flags: lab help)", cmd, name, cmd)
		}
		return fmt.Errorf("%s: %w (lab help %s)", cmd, err, cmd)
	}
	if fs.NArg() > maxArgs {
		return fmt.Errorf("%s: unexpected argument %q (lab help %s)", cmd, fs.Arg(maxArgs), cmd)
	}
	return nil
}

func firstArg(args []string) (string, []string) {
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "", args
}

func noArgs(cmd string, args []string, fn func() error) error {
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-" {
		return fmt.Errorf("%s: unknown flag %s (lab help %s; global flags: lab help)", cmd, args[0], cmd)
	}
	if len(args) > 0 {
		hint := ""
		if strings.HasSuffix(args[0], ".yaml") || strings.HasSuffix(args[0], ".yml") {
			hint = fmt.Sprintf(" (a lab spec is given with --file %s)", args[0])
		}
		return fmt.Errorf("%s takes no arguments, got %q%s", cmd, args, hint)
	}
	return fn()
}

func newDriver(provider, dir, binDir string) (driver.Driver, error) {
	switch provider {
	case "local":
		return &local.Driver{Dir: dir, BinDir: binDir}, nil
	case "qemu":
		return &qemu.Driver{Dir: dir}, nil
	case "hyperv":
		return &hyperv.Driver{Dir: dir}, nil
	default:
		return nil, fmt.Errorf("unknown provider %q (local, qemu, hyperv)", provider)
	}
}
