// Package engine holds what the lab's infrastructure-as-code engines
// (Terraform in infra/terraform, Pulumi in infra/pulumi) have in common:
// the verbs the lab command drives them with and the outputs they return.
// Both engines go through the one resource model, infra/resources; the
// native engine (infra/lab) drives the drivers directly and is not one of
// these.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-version"
)

// Engine brings a lab up, previews it and takes it down through an IaC
// tool, keeping that tool's state in the lab's state dir.
type Engine interface {
	// Name is the engine's name as --engine takes it.
	Name() string
	// Up creates or updates every resource and returns the outputs;
	// progress per resource goes to the engine's Out.
	Up(ctx context.Context) (Outputs, error)
	// Plan previews what Up would change, changing nothing; on a lab that
	// matches lab.yaml its last line says "no changes". It returns the
	// number of resources that would change.
	Plan(ctx context.Context) (int, error)
	// Down destroys every resource and removes the engine's state.
	Down(ctx context.Context) error
	// Outputs reads the outputs of the last Up without changing anything.
	Outputs(ctx context.Context) (Outputs, error)
}

// NodeOutput is one node in the outputs.
type NodeOutput struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Address string `json:"address"`
	URL     string `json:"url"`
	SSHHost string `json:"ssh_host"`
	SSHPort int    `json:"ssh_port"`
}

// Outputs are what an applied lab tells its users.
type Outputs struct {
	MasterURL string                `json:"master_url"`
	Nodes     map[string]NodeOutput `json:"nodes"`
}

// Names lists the nodes in name order.
func (o Outputs) Names() []string {
	names := make([]string, 0, len(o.Nodes))
	for n := range o.Nodes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Print writes the outputs as a table.
func (o Outputs) Print(w io.Writer) {
	fmt.Fprintf(w, "%-10s %-7s %-16s %-28s %s\n", "NODE", "ROLE", "ADDRESS", "URL", "SSH")
	for _, n := range o.Names() {
		no := o.Nodes[n]
		ssh := "-"
		if no.SSHPort != 0 {
			ssh = fmt.Sprintf("%s:%d", no.SSHHost, no.SSHPort)
		}
		fmt.Fprintf(w, "%-10s %-7s %-16s %-28s %s\n", no.Name, no.Role, no.Address, no.URL, ssh)
	}
	fmt.Fprintf(w, "master: %s\n", o.MasterURL)
}

// CLI is how an engine finds its command-line tool.
type CLI struct {
	// Name is the command (terraform, pulumi); EnvVar names a variable
	// that points at one (CALCLAB_TERRAFORM).
	Name, EnvVar string
	// Min is the oldest version accepted; Version reads a binary's.
	Min     *version.Version
	Version func(ctx context.Context, path string) (*version.Version, error)
	// Hint says how to get one, for the error when none is found.
	Hint string
}

// Find returns the first of $EnvVar, Name on PATH and the copy `make
// tools` builds ($CALCLAB_TOOLS_BIN, else ~/.cache/calclab/bin) whose
// version is at least Min. It never downloads anything; the error lists
// what it tried and why each was refused.
func (c CLI) Find(ctx context.Context) (string, error) {
	var cands []string
	if p := os.Getenv(c.EnvVar); p != "" {
		cands = append(cands, p)
	}
	if p, err := exec.LookPath(c.Name); err == nil {
		cands = append(cands, p)
	}
	if dir := os.Getenv("CALCLAB_TOOLS_BIN"); dir != "" {
		cands = append(cands, filepath.Join(dir, c.Name))
	} else if cache, err := os.UserCacheDir(); err == nil {
		cands = append(cands, filepath.Join(cache, "calclab", "bin", c.Name))
	}
	var tried []string
	for _, p := range cands {
		v, err := c.Version(ctx, p)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		if v.LessThan(c.Min) {
			tried = append(tried, fmt.Sprintf("%s: version %s is older than %s", p, v, c.Min))
			continue
		}
		return p, nil
	}
	msg := fmt.Sprintf("no %s CLI found: %s", c.Name, c.Hint)
	if len(tried) > 0 {
		msg += " (" + strings.Join(tried, "; ") + ")"
	}
	return "", errors.New(msg)
}
