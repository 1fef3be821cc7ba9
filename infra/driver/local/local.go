// Package local is the lab provider that runs every node as a process on
// this machine, bound to loopback: no root, no VM, no network access.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/driver/proc"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/envflag"
)

// Driver runs nodes as local processes. Its state lives under Dir.
type Driver struct {
	// Dir is the lab's state directory (.lab).
	Dir string
	// BinDir holds the master and slave binaries.
	BinDir string
	// StopTimeout is how long Down waits after SIGTERM before SIGKILL.
	StopTimeout time.Duration

	// Local nodes are processes: no console, no SSH, no plan.
	driver.Unsupported
}

var _ driver.Driver = (*Driver)(nil)

type nodeState struct {
	PID     int       `json:"pid"`
	Binary  string    `json:"binary"`
	URL     string    `json:"url"`
	Log     string    `json:"log"`
	Started time.Time `json:"started"`
}

type state struct {
	Nodes map[string]nodeState `json:"nodes"`
}

// Info implements driver.Driver.
func (d *Driver) Info() driver.Info { return driver.Info{Name: "local"} }

func (d *Driver) state() driver.State[state] {
	return driver.StateFile[state](d.Dir, "local", "stop the processes by hand")
}

func (d *Driver) load() (state, error) {
	st, err := d.state().Load()
	if err != nil {
		return state{}, err
	}
	if st.Nodes == nil {
		st.Nodes = map[string]nodeState{}
	}
	return *st, nil
}

func (d *Driver) save(st state) error { return d.state().Save(&st) }

// alive reports whether pid runs the given binary (a recycled pid running
// something else is not ours).
func alive(pid int, binary string) bool { return proc.Alive(pid, binary, "") }

// URL is the loopback URL of a node.
func URL(lab *spec.Lab, n spec.Node) string {
	return "http://" + net.JoinHostPort(lab.Services.LocalHost, strconv.Itoa(n.LocalPort))
}

// Placement is where node n's service sits under the local provider: on
// its loopback port, data under the state directory, slave webhooks
// allowed from loopback and the lab's network.
func (d *Driver) Placement(lab *spec.Lab, n spec.Node) spec.Placement {
	p := spec.Placement{Listen: net.JoinHostPort(lab.Services.LocalHost, strconv.Itoa(n.LocalPort))}
	if n.Role == spec.RoleMaster {
		p.DataDir = filepath.Join(d.Dir, n.Name, "data")
		p.AllowCIDR = "127.0.0.0/8,::1/128," + lab.Network.CIDR
	} else {
		p.MasterURL = URL(lab, lab.Master())
	}
	return p
}

// ServiceEnv implements driver.Driver: the node's directory under the
// state dir and its settings as CALCLAB_ variables.
func (d *Driver) ServiceEnv(lab *spec.Lab, node string) (string, map[string]string, error) {
	n, ok := lab.Node(node)
	if !ok {
		return "", nil, fmt.Errorf("no node %q in %s (nodes: %s)", node, lab.File, strings.Join(lab.NodeNames(), ", "))
	}
	s, err := lab.Settings(n, d.Placement(lab, n))
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(d.Dir, n.Name), s.Env(), nil
}

// args returns node n's binary, its flags, and its secrets as environment
// variables: the token is never a flag, so it shows neither in ps nor in
// the node's log.
func (d *Driver) args(lab *spec.Lab, n spec.Node) (string, []string, []string, error) {
	s, err := lab.Settings(n, d.Placement(lab, n))
	if err != nil {
		return "", nil, nil, err
	}
	var flags spec.Settings
	var env []string
	for _, x := range s {
		if x.Flag == "token" {
			env = append(env, envflag.EnvName(x.Flag)+"="+x.Value)
			continue
		}
		flags = append(flags, x)
	}
	return filepath.Join(d.BinDir, n.Role), flags.Flags(), env, nil
}

// Up implements driver.Driver: it starts every node that is not running.
func (d *Driver) Up(ctx context.Context, lab *spec.Lab, progress driver.Progress) error {
	st, err := d.load()
	if err != nil {
		return err
	}
	for _, n := range lab.Nodes {
		start := time.Now()
		bin, args, env, err := d.args(lab, n)
		if err != nil {
			return err
		}
		if ns, ok := st.Nodes[n.Name]; ok && alive(ns.PID, ns.Binary) {
			progress(driver.Step{Node: n.Name, Step: "start", Done: true, Elapsed: time.Since(start), Hint: fmt.Sprintf("already running (pid %d)", ns.PID)})
			continue
		}
		progress(driver.Step{Node: n.Name, Step: "start"})
		ns, err := d.startNode(lab, n, bin, args, env)
		if err != nil {
			progress(driver.Step{Node: n.Name, Step: "start", Err: err, Elapsed: time.Since(start), Hint: ns.Log})
			return fmt.Errorf("node %s: start: %w", n.Name, err)
		}
		st.Nodes[n.Name] = ns
		if err := d.save(st); err != nil {
			return err
		}
		progress(driver.Step{Node: n.Name, Step: "start", Done: true, Elapsed: time.Since(start), Hint: fmt.Sprintf("pid %d", ns.PID)})
	}
	return nil
}

func (d *Driver) startNode(lab *spec.Lab, n spec.Node, bin string, args, env []string) (nodeState, error) {
	dir := filepath.Join(d.Dir, n.Name)
	ns := nodeState{Binary: bin, URL: URL(lab, n), Log: filepath.Join(dir, n.Name+".log")}
	if _, err := os.Stat(bin); err != nil {
		return ns, fmt.Errorf("binary %s not found (run make build): %w", bin, err)
	}
	addr := net.JoinHostPort(lab.Services.LocalHost, strconv.Itoa(n.LocalPort))
	if ln, err := net.Listen("tcp", addr); err != nil {
		return ns, fmt.Errorf("address %s is taken by another program (change local_port in %s or stop it): %w", addr, lab.File, err)
	} else {
		ln.Close()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ns, fmt.Errorf("create %s: %w", dir, err)
	}
	logf, err := os.OpenFile(ns.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return ns, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s: lab starting %s %s\n", time.Now().UTC().Format(time.RFC3339), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = d.Dir
	proc.Detach(cmd)
	if err := cmd.Start(); err != nil {
		return ns, fmt.Errorf("exec %s: %w", bin, err)
	}
	ns.PID, ns.Started = cmd.Process.Pid, time.Now().UTC()
	// Reap the child if it dies while we still run, so alive() is right.
	go func() { _ = cmd.Wait() }()
	return ns, nil
}

// Nodes implements driver.Driver.
func (d *Driver) Nodes(_ context.Context, lab *spec.Lab) ([]driver.Node, error) {
	st, err := d.load()
	if err != nil {
		return nil, err
	}
	out := make([]driver.Node, 0, len(lab.Nodes))
	for _, n := range lab.Nodes {
		ns := st.Nodes[n.Name]
		dn := driver.Node{Name: n.Name, Role: n.Role, URL: URL(lab, n), Log: filepath.Join(d.Dir, n.Name, n.Name+".log")}
		if alive(ns.PID, ns.Binary) {
			dn.PID, dn.Running, dn.Started = ns.PID, true, ns.Started
		}
		out = append(out, dn)
	}
	return out, nil
}

// Down implements driver.Driver: it stops every process the lab started
// (slaves first, so they deregister from a live master) and removes the
// lab's files.
func (d *Driver) Down(_ context.Context, lab *spec.Lab) error {
	st, err := d.load()
	if err != nil {
		return err
	}
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	order := append(lab.Slaves(), lab.Master())
	var errs []error
	stopped := map[string]bool{}
	for _, n := range order {
		stopped[n.Name] = true
		if ns, ok := st.Nodes[n.Name]; ok {
			errs = append(errs, stop(ns, timeout))
		}
	}
	// Nodes that were removed from lab.yaml since they were started.
	for name, ns := range st.Nodes {
		if !stopped[name] {
			errs = append(errs, stop(ns, timeout))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for name := range st.Nodes {
		if err := os.RemoveAll(filepath.Join(d.Dir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range lab.Nodes {
		if err := os.RemoveAll(filepath.Join(d.Dir, n.Name)); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, d.state().Remove())
	// Remove .lab itself only when nothing else lives there.
	_ = os.Remove(d.Dir)
	return errors.Join(errs...)
}

func stop(ns nodeState, timeout time.Duration) error {
	return proc.Stop(ns.PID, ns.Binary, "", timeout)
}

// Logs implements driver.Driver: it prints the node's service log, the
// file the process writes its stdout and stderr to.
func (d *Driver) Logs(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error {
	return driver.CopyLog(ctx, lab, node, filepath.Join(d.Dir, node, node+".log"), "log", follow, w)
}

// StopNode stops one node's process and forgets it, keeping its files
// (log, data) for the next start; the other nodes are left alone.
func (d *Driver) StopNode(_ context.Context, _ *spec.Lab, node string) error {
	st, err := d.load()
	if err != nil {
		return err
	}
	timeout := d.StopTimeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ns, ok := st.Nodes[node]
	if !ok {
		return nil
	}
	if err := stop(ns, timeout); err != nil {
		return fmt.Errorf("node %s: stop: %w", node, err)
	}
	delete(st.Nodes, node)
	return d.save(st)
}

// DeleteNode stops one node's process and removes its files, leaving the
// other nodes alone (the resource model deletes nodes one at a time).
// Calling it again does nothing.
func (d *Driver) DeleteNode(ctx context.Context, lab *spec.Lab, node string) error {
	if err := d.StopNode(ctx, lab, node); err != nil {
		return err
	}
	if err := os.RemoveAll(filepath.Join(d.Dir, node)); err != nil {
		return fmt.Errorf("node %s: remove files: %w", node, err)
	}
	return nil
}
