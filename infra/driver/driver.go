// Package driver defines the one small interface every lab provider
// implements (local processes now; QEMU and Hyper-V VMs later), after kind's
// Provider: bring nodes up, list them, tear them down, read their logs.
package driver

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/calclab/calclab/infra/spec"
)

// ErrUnsupported is returned for an operation a provider cannot do, such
// as SSH into a local process.
var ErrUnsupported = errors.New("not supported by this provider")

// Step is one stage of bringing a node up, reported as progress.
type Step struct {
	Node    string
	Step    string // e.g. "start", "healthy"
	Done    bool
	Err     error
	Elapsed time.Duration
	// Hint points at where to look when Err is set (a log file).
	Hint string
}

// Progress receives steps as they start and finish.
type Progress func(Step)

// Node is a node as the provider sees it.
type Node struct {
	Name    string `json:"node"`
	Role    string `json:"role"`
	PID     int    `json:"pid,omitempty"`
	Running bool   `json:"running"`
	// URL is where the host reaches the node's service.
	URL string `json:"url"`
	// Log is the node's service log on the host, if it has one.
	Log string `json:"log,omitempty"`
}

// Driver brings up and tears down the nodes of a lab.
type Driver interface {
	// Name is the provider name used in lab.yaml and --provider.
	Name() string
	// Up starts every node that is not already running (converges: safe
	// to call again) and returns once each process or VM is started.
	Up(ctx context.Context, lab *spec.Lab, progress Progress) error
	// Nodes lists the lab's nodes and whether each is running.
	Nodes(ctx context.Context, lab *spec.Lab) ([]Node, error)
	// Down stops every node and removes every file the driver made, and
	// nothing else. Calling it again does nothing.
	Down(ctx context.Context, lab *spec.Lab) error
	// Logs writes a node's service log to w, following it when follow is set.
	Logs(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error
	// SSH runs cmd (or an interactive shell) on a node.
	SSH(ctx context.Context, lab *spec.Lab, node string, cmd []string) error
}

// SSHTarget is where a node's SSH server is reached from this machine, and
// with what key and host-key file.
type SSHTarget struct {
	Addr       string // host:port
	User       string // login user with passwordless sudo
	KeyDir     string // holds id_ed25519 (provision/sshkeys)
	KnownHosts string // trusted-on-first-use host keys
}

// Remote is implemented by providers whose nodes are machines reached over
// SSH (QEMU, Hyper-V): the lab deploys the services onto them as systemd
// units. The local provider runs the binaries itself and is not Remote.
type Remote interface {
	SSHTarget(lab *spec.Lab, node string) (SSHTarget, error)
	// ServiceLogs writes the node's calclab service journal to w.
	ServiceLogs(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error
}
