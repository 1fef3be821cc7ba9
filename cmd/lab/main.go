// Command lab brings a calclab lab up and down from lab.yaml and looks into
// its nodes: up, down, status, logs, ssh, ssh-config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
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

const summary = `lab: bring a calclab lab (one master, N slaves) up and down from lab.yaml.

Usage:
  lab [flags] up              start every node, wait until the master is healthy and
                              every slave registered, print a status table
  lab [flags] down            stop every node and remove the lab's files (idempotent)
  lab [flags] status [--json] table of nodes: role, pid, address, health, in-flight, tasks done
  lab [flags] logs NODE [-f]  print (and follow) a node's service log (VMs: its journal;
                              --console: the serial console)
  lab [flags] ssh NODE [-- CMD...]
                              shell or command on a node (VM providers)
  lab [flags] ssh-config      OpenSSH config for the lab's VMs: ssh -F .lab/ssh_config slave-1
  lab [flags] deploy          (re)install the services on the VMs over SSH; idempotent
  lab [flags] validate        check lab.yaml and print the nodes
  lab [flags] plan [--out DIR]
                              what up would run, running nothing (hyperv: the PowerShell
                              scripts; --out writes NN-step.ps1 files and each node's seed)

Providers: local (default: processes on 127.0.0.1, no root, no network), qemu, hyperv.`

func main() { envflag.Exit("lab", run(os.Args[1:], os.Stdout)) }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	file := fs.String("file", "lab.yaml", "lab spec to read")
	provider := fs.String("provider", "", "provider to use instead of the spec's: local, qemu, hyperv")
	stateDir := fs.String("state-dir", ".lab", "directory of the lab's state, logs and data")
	binDir := fs.String("bin-dir", "", "directory of the master and slave binaries (default: the lab binary's own)")
	if err := envflag.Parse(fs, summary, args, os.Getenv); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errors.New("missing command (up, down, status, logs, ssh, ssh-config, validate)")
	}
	s, err := spec.Load(*file)
	if err != nil {
		return err
	}
	// The provider that brought the lab up stays in charge until down, so
	// `lab up --provider qemu` followed by `lab status` speaks to the VMs.
	dirAbs, err := filepath.Abs(*stateDir)
	if err != nil {
		return err
	}
	providerFile := filepath.Join(dirAbs, "provider")
	if *provider == "" {
		if b, err := os.ReadFile(providerFile); err == nil {
			*provider = strings.TrimSpace(string(b))
		}
	}
	if *provider != "" && *provider != s.Provider {
		s.Provider = *provider
		if err := s.Validate(); err != nil {
			return err
		}
	}
	if *binDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find binaries: %w (set --bin-dir)", err)
		}
		*binDir = filepath.Dir(exe)
	}
	dir, err := filepath.Abs(*stateDir)
	if err != nil {
		return err
	}
	// Only the verbs that start services make a token; the others read it.
	cmd, cargs := rest[0], rest[1:]
	token := lab.ReadToken
	if cmd == "up" || cmd == "deploy" || cmd == "plan" {
		token = lab.EnsureToken
	}
	tokenFile, err := token(s, dir)
	if err != nil {
		return err
	}
	drv, err := newDriver(s.Provider, dir, *binDir)
	if err != nil {
		return err
	}
	l := &lab.Lab{Spec: s, Driver: drv, Out: out, LinuxBinDir: filepath.Join(*binDir, "linux-amd64"), StateDir: dir, TokenFile: tokenFile}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch cmd {
	case "up":
		return noArgs(cmd, cargs, func() error {
			if err := os.MkdirAll(dirAbs, 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(providerFile, []byte(s.Provider+"\n"), 0o644); err != nil {
				return err
			}
			return l.Up(ctx)
		})
	case "down":
		return noArgs(cmd, cargs, func() error {
			if err := l.Down(ctx); err != nil {
				return err
			}
			_ = os.Remove(providerFile)
			_ = os.Remove(dirAbs) // only when empty
			return nil
		})
	case "status":
		sf := flag.NewFlagSet("status", flag.ContinueOnError)
		asJSON := sf.Bool("json", false, "print JSON instead of a table")
		if err := sf.Parse(cargs); err != nil {
			return err
		}
		return l.Status(ctx, *asJSON)
	case "logs":
		lf := flag.NewFlagSet("logs", flag.ContinueOnError)
		follow := lf.Bool("f", false, "follow the log")
		console := lf.Bool("console", false, "VM providers: the serial console instead of the service journal")
		node, largs := firstArg(cargs)
		if err := lf.Parse(largs); err != nil {
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
		node, sargs := firstArg(cargs)
		if node == "" {
			return fmt.Errorf("usage: lab ssh NODE [-- CMD...] (nodes: %v)", s.NodeNames())
		}
		if len(sargs) > 0 && sargs[0] == "--" {
			sargs = sargs[1:]
		}
		return l.SSH(ctx, node, sargs, os.Stdin, os.Stdout, os.Stderr)
	case "ssh-config":
		text, err := l.SSHConfig()
		if err != nil {
			return err
		}
		fmt.Fprint(out, text)
		return nil
	case "plan":
		pf := flag.NewFlagSet("plan", flag.ContinueOnError)
		outDir := pf.String("out", "", "write the plan's files to this directory")
		if err := pf.Parse(cargs); err != nil {
			return err
		}
		if pf.NArg() > 0 {
			return fmt.Errorf("plan takes no arguments, got %q", pf.Args())
		}
		if !drv.Info().Plan {
			return fmt.Errorf("plan with the %s provider: %w (use --provider hyperv)", drv.Info().Name, driver.ErrUnsupported)
		}
		return drv.Plan(ctx, s, out, *outDir)
	case "deploy":
		return noArgs(cmd, cargs, func() error { return l.Deploy(ctx) })
	case "validate":
		fmt.Fprintf(out, "%s: ok: lab %s, provider %s, network %s\n", s.File, s.Name, s.Provider, s.Network.CIDR)
		for _, n := range s.Nodes {
			fmt.Fprintf(out, "  %-10s %-7s %-15s local %s\n", n.Name, n.Role, n.IP, local.URL(s, n))
		}
		return nil
	default:
		return fmt.Errorf("unknown command %q (see lab --help)", cmd)
	}
}

func firstArg(args []string) (string, []string) {
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		return args[0], args[1:]
	}
	return "", args
}

func noArgs(cmd string, args []string, fn func() error) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd, args)
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
