package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/calclab/calclab/infra/engine"
)

// runEngine runs the verbs an IaC engine owns (up, plan, down, status);
// the others (logs, ssh, ssh-config, validate) go through the same drivers
// natively, so handled is false for them.
func (c *cli) runEngine(ctx context.Context, cmd string, args []string) (handled bool, err error) {
	e := engines[c.eng](engineConfig{spec: c.spec, stateDir: c.dir, binDir: c.g.binDir, out: c.out})
	switch cmd {
	case "up":
		return true, noArgs(cmd, args, func() error {
			if err := c.remember(); err != nil {
				return err
			}
			o, err := e.Up(ctx)
			if err != nil {
				c.lab.ExplainFailure(ctx, c.out)
				return fmt.Errorf("lab up --engine %s: %w (the engine's state is kept: fix the cause and run lab up again, or lab down)", c.eng, err)
			}
			fmt.Fprintln(c.out)
			return c.printHealth(ctx, o, false)
		})
	case "plan":
		return true, noArgs(cmd, args, func() error {
			_, err := e.Plan(ctx)
			return err
		})
	case "down":
		return true, noArgs(cmd, args, func() error {
			if err := e.Down(ctx); err != nil {
				return err
			}
			c.forget()
			if err := c.lab.RemoveFiles(); err != nil {
				return fmt.Errorf("lab down: %w", err)
			}
			fmt.Fprintf(c.out, "lab %s is down\n", c.spec.Name)
			return nil
		})
	case "status":
		sf := flag.NewFlagSet("status", flag.ContinueOnError)
		asJSON := sf.Bool("json", false, "print JSON instead of a table")
		if err := parseVerb(sf, cmd, args, 0); err != nil {
			return true, err
		}
		o, err := e.Outputs(ctx)
		if err != nil {
			return true, err
		}
		return true, c.printHealth(ctx, o, *asJSON)
	case "deploy":
		return true, fmt.Errorf("deploy: the %s engine deploys on lab up (an unchanged deploy is a no-op there)", c.eng)
	}
	return false, nil
}

// nodeHealth is one row of an engine lab's status.
type nodeHealth struct {
	engine.NodeOutput
	Health string `json:"health"`
}

// printHealth prints the outputs with each node's /health, and fails when
// a node is not ok.
func (c *cli) printHealth(ctx context.Context, o engine.Outputs, asJSON bool) error {
	client := &http.Client{Timeout: 3 * time.Second}
	var rows []nodeHealth
	var bad []string
	for _, name := range o.Names() {
		n := o.Nodes[name]
		h := probe(ctx, client, n.URL)
		rows = append(rows, nodeHealth{NodeOutput: n, Health: h})
		if h != "ok" {
			bad = append(bad, name+" "+h)
		}
	}
	if asJSON {
		enc := json.NewEncoder(c.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			Engine    string       `json:"engine"`
			MasterURL string       `json:"master_url"`
			Nodes     []nodeHealth `json:"nodes"`
		}{c.eng, o.MasterURL, rows}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.out, "%-10s %-7s %-16s %-28s %-20s %s\n", "NODE", "ROLE", "ADDRESS", "URL", "SSH", "HEALTH")
		for _, r := range rows {
			ssh := "-"
			if r.SSHPort != 0 {
				ssh = fmt.Sprintf("%s:%d", r.SSHHost, r.SSHPort)
			}
			fmt.Fprintf(c.out, "%-10s %-7s %-16s %-28s %-20s %s\n", r.Name, r.Role, r.Address, r.URL, ssh, r.Health)
		}
		fmt.Fprintf(c.out, "\nmaster: %s (engine %s, state in %s)\n", o.MasterURL, c.eng, c.g.stateDir)
		if c.lab.TokenFile != "" {
			fmt.Fprintf(c.out, "token: generated for this lab, in %s (slaves and newman use it)\n", c.lab.TokenFile)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("lab %s is not healthy: %s", c.spec.Name, strings.Join(bad, ", "))
	}
	return nil
}

// probe returns a service's /health status, or why there is none.
func probe(ctx context.Context, client *http.Client, url string) string {
	if url == "" {
		return "no url"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(url, "/")+"/health", nil)
	if err != nil {
		return "bad url"
	}
	res, err := client.Do(req)
	if err != nil {
		return "unreachable"
	}
	defer res.Body.Close()
	var h struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil || h.Status == "" {
		return fmt.Sprintf("http %d", res.StatusCode)
	}
	return h.Status
}
