package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/services/api"
)

// only returns a copy of the lab restricted to the master and node, so
// that Up starts that node (and the master, if it is down) and waits for
// them only, leaving the other nodes as they are.
func (l *Lab) only(node string) (*Lab, error) {
	n, ok := l.Spec.Node(node)
	if !ok {
		return nil, fmt.Errorf("no node %q in %s (nodes: %s)", node, l.Spec.File, strings.Join(l.Spec.NodeNames(), ", "))
	}
	sub := *l.Spec
	sub.Nodes = []spec.Node{l.Spec.Master()}
	if n.Role != spec.RoleMaster {
		sub.Nodes = append(sub.Nodes, n)
	}
	cp := *l
	cp.Spec = &sub
	return &cp, nil
}

// Start starts one node (and the master, which every slave needs) if it
// is not running, waits until it is ready, and leaves the other nodes
// alone.
func (l *Lab) Start(ctx context.Context, node string) error {
	sub, err := l.only(node)
	if err != nil {
		return err
	}
	return sub.Up(ctx)
}

// Stop stops one node, keeping its files for the next start or up.
func (l *Lab) Stop(ctx context.Context, node string) error {
	if _, ok := l.Spec.Node(node); !ok {
		return fmt.Errorf("no node %q in %s (nodes: %s)", node, l.Spec.File, strings.Join(l.Spec.NodeNames(), ", "))
	}
	if err := l.Driver.StopNode(ctx, l.Spec, node); err != nil {
		return fmt.Errorf("stop %s: %w", node, err)
	}
	fmt.Fprintf(l.Out, "%s stopped (lab start %s brings it back)\n", node, node)
	return nil
}

// Restart stops and starts one node.
func (l *Lab) Restart(ctx context.Context, node string) error {
	if err := l.Stop(ctx, node); err != nil {
		return err
	}
	return l.Start(ctx, node)
}

// NodeInfo is what lab info shows of one node.
type NodeInfo struct {
	Node      string    `json:"node"`
	Role      string    `json:"role"`
	Provider  string    `json:"provider"`
	IP        string    `json:"ip"`
	URL       string    `json:"url"`
	Running   bool      `json:"running"`
	PID       int       `json:"pid,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Health    string    `json:"health"`
	Log       string    `json:"log,omitempty"`
	Console   string    `json:"console,omitempty"`
	SSH       string    `json:"ssh,omitempty"`
	CPUs      int       `json:"cpus,omitempty"`
	MemoryMB  int       `json:"memory_mb,omitempty"`
	Settings  []string  `json:"settings"`
	InFlight  int       `json:"in_flight"`
	TasksDone uint64    `json:"tasks_done"`
}

// Info describes one node.
func (l *Lab) Info(ctx context.Context, node string) (NodeInfo, error) {
	n, err := nodeOf(ctx, l.Driver, l.Spec, node)
	if err != nil {
		return NodeInfo{}, err
	}
	sn, _ := l.Spec.Node(node)
	info := NodeInfo{Node: n.Name, Role: n.Role, Provider: l.Driver.Info().Name, IP: sn.IP, URL: n.URL, Running: n.Running,
		PID: n.PID, Started: n.Started, Health: "stopped", Log: n.Log, Console: n.Console, CPUs: sn.CPUs, MemoryMB: sn.Memory}
	if l.Driver.Info().Remote {
		if t, err := l.Driver.SSHTarget(l.Spec, node); err == nil {
			info.SSH = fmt.Sprintf("%s@%s (lab ssh %s)", t.User, t.Addr, node)
			if t.Jump != nil {
				info.SSH += " via " + t.Jump.Addr
			}
		}
	}
	if _, env, err := l.Driver.ServiceEnv(l.Spec, node); err == nil {
		for k := range env {
			if k != "CALCLAB_TOKEN" {
				info.Settings = append(info.Settings, k+"="+env[k])
			}
		}
		sort.Strings(info.Settings)
	}
	if n.Running {
		var h api.Health
		if err := l.getJSON(ctx, n.URL+"/health", &h); err != nil {
			info.Health = "unreachable"
		} else {
			info.Health, info.InFlight, info.TasksDone = h.Status, h.InFlight, h.TasksDone
		}
	}
	return info, nil
}

// PrintInfo writes Info as "key: value" lines, or JSON.
func (l *Lab) PrintInfo(ctx context.Context, node string, asJSON bool) error {
	info, err := l.Info(ctx, node)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(l.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	tw := tabwriter.NewWriter(l.Out, 0, 0, 2, ' ', 0)
	row := func(k string, v any) {
		if s := fmt.Sprint(v); s != "" && s != "0" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, s)
		}
	}
	row("node", info.Node)
	row("role", info.Role)
	row("provider", info.Provider)
	row("ip", info.IP)
	row("url", info.URL)
	row("running", info.Running)
	row("pid", info.PID)
	if !info.Started.IsZero() {
		row("started", info.Started.Format(time.RFC3339))
	}
	row("health", info.Health)
	row("in flight", info.InFlight)
	row("tasks done", info.TasksDone)
	row("cpus", info.CPUs)
	row("memory", fmt.Sprintf("%d MiB", info.MemoryMB))
	row("log", info.Log)
	row("console", info.Console)
	row("ssh", info.SSH)
	for _, s := range info.Settings {
		row("setting", s)
	}
	return tw.Flush()
}

// Exec runs a command on a node: over SSH on a VM, in the node's
// directory with its service's environment on the local provider.
func (l *Lab) Exec(ctx context.Context, node string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(cmd) == 0 {
		return errors.New("exec: no command: lab exec NODE -- CMD [ARGS...]")
	}
	if l.Driver.Info().Remote {
		return l.SSH(ctx, node, cmd, stdin, stdout, stderr)
	}
	dir, env, err := l.Driver.ServiceEnv(l.Spec, node)
	if err != nil {
		return fmt.Errorf("exec on %s: %w", node, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("exec on %s: %w", node, err)
	}
	c := exec.CommandContext(ctx, cmd[0], cmd[1:]...)
	c.Dir = dir
	c.Env = os.Environ()
	for k, v := range env {
		c.Env = append(c.Env, k+"="+v)
	}
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	return c.Run()
}

// ExplainFailure writes, after a failed up, each node that is not ok with
// the last lines of its log, and what to do next.
func (l *Lab) ExplainFailure(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	rows, err := l.Nodes(ctx)
	if err != nil {
		fmt.Fprintf(w, "\nlab status failed too: %v\n", err)
	}
	for _, r := range rows {
		if r.Health == "ok" {
			continue
		}
		fmt.Fprintf(w, "\n%s is %s; the last lines of its log (lab logs %s):\n", r.Node, r.Health, r.Node)
		var buf bytes.Buffer
		if err := l.Driver.Logs(ctx, l.Spec, r.Node, false, &buf); err != nil {
			fmt.Fprintf(w, "  (no log: %v)\n", err)
			continue
		}
		lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		for _, line := range lines {
			fmt.Fprintf(w, "  | %s\n", line)
		}
	}
	fmt.Fprintf(w, "\nWhat was started is still running: fix the cause and run lab up again (it converges), or lab down to remove it all.\n")
}
