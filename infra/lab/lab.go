// Package lab orchestrates a lab through a provider's driver: bring the
// nodes up, wait until the master is healthy and every slave registered,
// report status, and tear everything down.
package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/services/api"
)

// Lab is a lab spec bound to the driver of its provider.
type Lab struct {
	Spec   *spec.Lab
	Driver driver.Driver
	// Out receives progress and tables.
	Out io.Writer
	// ReadyTimeout bounds the wait for a healthy master and registered
	// slaves (default 60s).
	ReadyTimeout time.Duration
	// LinuxBinDir holds static linux/amd64 master and slave binaries, for
	// providers whose nodes are VMs.
	LinuxBinDir string
	// StateDir is the lab's state directory (.lab), where the lab writes
	// ssh_config for Remote providers.
	StateDir string
	// TokenFile holds the lab's generated token ("" when lab.yaml sets it).
	TokenFile string
	client    *http.Client
}

func (l *Lab) http() *http.Client {
	if l.client == nil {
		l.client = &http.Client{Timeout: 2 * time.Second}
	}
	return l.client
}

func (l *Lab) progress(s driver.Step) {
	switch {
	case s.Err != nil:
		fmt.Fprintf(l.Out, "  %-10s %-10s FAILED after %s: %v\n", s.Node, s.Step, s.Elapsed.Round(time.Millisecond), s.Err)
		if s.Hint != "" {
			fmt.Fprintf(l.Out, "  %-10s %-10s see %s\n", "", "", s.Hint)
		}
	case s.Done:
		fmt.Fprintf(l.Out, "  %-10s %-10s ok  %6s  %s\n", s.Node, s.Step, s.Elapsed.Round(time.Millisecond), s.Hint)
	}
}

// Up brings every node up and waits until the master is healthy and every
// slave is registered and free; it is safe to run again.
func (l *Lab) Up(ctx context.Context) error {
	start := time.Now()
	info := l.Driver.Info()
	fmt.Fprintf(l.Out, "lab %s: bringing up %d nodes with the %s provider\n", l.Spec.Name, len(l.Spec.Nodes), info.Name)
	if err := l.Driver.Up(ctx, l.Spec, l.progress); err != nil {
		return err
	}
	if info.Remote {
		if err := l.writeSSHConfig(); err != nil {
			return err
		}
		if err := l.waitBooted(ctx); err != nil {
			return err
		}
		if err := l.Deploy(ctx); err != nil {
			return err
		}
	}
	if err := l.waitReady(ctx); err != nil {
		return err
	}
	fmt.Fprintf(l.Out, "lab %s is up in %s\n\n", l.Spec.Name, time.Since(start).Round(time.Millisecond))
	if _, err := l.Status(ctx, false); err != nil {
		return err
	}
	m := l.nodeURL(ctx, spec.RoleMaster)
	fmt.Fprintf(l.Out, "\nTry it:\n  curl -s -X POST %s/submit-task -H 'Content-Type: application/json' -d '{\"payload\": \"4 * (2 + 3)\"}'\n", m)
	fmt.Fprintf(l.Out, "  curl -s %s/slaves\n", m)
	return nil
}

func (l *Lab) nodeURL(ctx context.Context, role string) string {
	nodes, _ := l.Driver.Nodes(ctx, l.Spec)
	for _, n := range nodes {
		if n.Role == role {
			return n.URL
		}
	}
	return ""
}

// waitReady polls the master until it is healthy and lists every slave of
// the spec as registered and not down.
func (l *Lab) waitReady(ctx context.Context) error {
	timeout := l.ReadyTimeout
	if timeout <= 0 {
		timeout = l.Driver.Info().ReadyTimeout
	}
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nodes, err := l.Driver.Nodes(ctx, l.Spec)
	if err != nil {
		return err
	}
	var master driver.Node
	for _, n := range nodes {
		if n.Role == spec.RoleMaster {
			master = n
		}
	}
	want := map[string]bool{}
	for _, n := range l.Spec.Slaves() {
		want[n.Name] = true
	}
	start := time.Now()
	healthy := false
	var last string
	for {
		cur, err := l.Driver.Nodes(ctx, l.Spec)
		if err != nil {
			return err
		}
		for _, c := range cur {
			if !c.Running {
				return fmt.Errorf("node %s is not running (it exited while starting?); see lab logs %s", c.Name, c.Name)
			}
		}
		if !healthy {
			var h api.Health
			if err := l.getJSON(ctx, master.URL+"/health", &h); err == nil && h.Status == "ok" {
				healthy = true
				fmt.Fprintf(l.Out, "  %-10s %-10s ok  %6s  %s\n", master.Name, "healthy", time.Since(start).Round(time.Millisecond), master.URL)
			} else {
				last = fmt.Sprintf("master not healthy at %s: %v", master.URL, err)
			}
		}
		if healthy {
			var slaves []api.SlaveInfo
			if err := l.getJSON(ctx, master.URL+"/slaves", &slaves); err == nil {
				ready := 0
				for _, s := range slaves {
					if want[s.ID] && s.Status != api.SlaveDown && s.Status != api.SlaveDraining {
						ready++
					}
				}
				if ready == len(want) {
					fmt.Fprintf(l.Out, "  %-10s %-10s ok  %6s  %d of %d slaves registered\n", "slaves", "registered", time.Since(start).Round(time.Millisecond), ready, len(want))
					return nil
				}
				last = fmt.Sprintf("%d of %d slaves registered", ready, len(want))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lab not ready after %s: %s (logs: lab logs NODE)", timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (l *Lab) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := l.http().Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("GET %s answered %d: %w", url, res.StatusCode, err)
	}
	return nil
}

// NodeStatus is one row of lab status.
type NodeStatus struct {
	Node      string `json:"node"`
	Role      string `json:"role"`
	PID       int    `json:"pid,omitempty"`
	Address   string `json:"address"`
	Health    string `json:"health"`
	InFlight  int    `json:"in_flight"`
	TasksDone uint64 `json:"tasks_done"`
}

// Nodes returns the status of every node.
func (l *Lab) Nodes(ctx context.Context) ([]NodeStatus, error) {
	nodes, err := l.Driver.Nodes(ctx, l.Spec)
	if err != nil {
		return nil, err
	}
	out := make([]NodeStatus, 0, len(nodes))
	for _, n := range nodes {
		row := NodeStatus{Node: n.Name, Role: n.Role, PID: n.PID, Address: n.URL, Health: "stopped"}
		if n.Running {
			var h api.Health
			if err := l.getJSON(ctx, n.URL+"/health", &h); err != nil {
				row.Health = "unreachable"
			} else {
				row.Health, row.InFlight, row.TasksDone = h.Status, h.InFlight, h.TasksDone
			}
		}
		out = append(out, row)
	}
	return out, nil
}

// Status prints a table of the nodes (or JSON) and returns the nodes
// whose health is not "ok" ("slave-2 stopped").
func (l *Lab) Status(ctx context.Context, asJSON bool) (unhealthy []string, err error) {
	rows, err := l.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		if r.Health != "ok" {
			unhealthy = append(unhealthy, r.Node+" "+r.Health)
		}
	}
	if asJSON {
		enc := json.NewEncoder(l.Out)
		enc.SetIndent("", "  ")
		return unhealthy, enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(l.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tPID\tADDRESS\tHEALTH\tIN-FLIGHT\tTASKS DONE")
	for _, r := range rows {
		pid := "-"
		if r.PID > 0 {
			pid = strconv.Itoa(r.PID)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", r.Node, r.Role, pid, strings.TrimPrefix(r.Address, "http://"), r.Health, r.InFlight, r.TasksDone)
	}
	if err := tw.Flush(); err != nil {
		return nil, err
	}
	if l.TokenFile != "" {
		fmt.Fprintf(l.Out, "\ntoken: generated for this lab, in %s (slaves and newman use it)\n", l.TokenFile)
	}
	return unhealthy, nil
}

// Logs writes a node's service log: the journal of its calclab unit on a
// VM provider, the process log on the local one.
func (l *Lab) Logs(ctx context.Context, node string, follow bool, w io.Writer) error {
	return l.Driver.Logs(ctx, l.Spec, node, follow, w)
}

// Console writes a node's boot console, for providers that have one.
func (l *Lab) Console(ctx context.Context, node string, follow bool, w io.Writer) error {
	if !l.Driver.Info().Console {
		return fmt.Errorf("console with the %s provider: %w (its nodes have no console; see lab logs %s)", l.Driver.Info().Name, driver.ErrUnsupported, node)
	}
	return l.Driver.Console(ctx, l.Spec, node, follow, w)
}

// RemoveFiles removes the lab's own files in its state dir, the same for
// every provider and engine: ssh_config, the SSH key pair and known hosts
// (made by up, or by plan's seeds), the generated token; then the state
// dir itself when nothing else is left in it.
func (l *Lab) RemoveFiles() error {
	if l.StateDir == "" {
		return nil
	}
	for _, f := range []string{driver.SSHConfigFile(l.StateDir), driver.KeyDir(l.StateDir), driver.KnownHostsFile(l.StateDir), l.TokenFile} {
		if f == "" {
			continue
		}
		if err := os.RemoveAll(f); err != nil {
			return err
		}
	}
	_ = os.Remove(l.StateDir) // only when empty
	return nil
}

// Down stops every node and removes the lab's files.
func (l *Lab) Down(ctx context.Context) error {
	start := time.Now()
	if err := l.Driver.Down(ctx, l.Spec); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	if err := l.RemoveFiles(); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	fmt.Fprintf(l.Out, "lab %s is down (%s)\n", l.Spec.Name, time.Since(start).Round(time.Millisecond))
	return nil
}
