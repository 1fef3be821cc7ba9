// Package driver defines the one interface every lab provider implements
// (local processes, QEMU VMs, Hyper-V VMs), after kind's Provider + Info
// and Lima's split: a driver does the lifecycle of its nodes only (create,
// start, list, stop, remove); infra/lab does everything that is the same
// for every provider on top of it (the SSH + cloud-init readiness wait,
// deploying the services over SSH, waiting for the master and slaves,
// ssh-config, ssh, exec).
//
// What a driver can do beyond the lifecycle is declared in its Info, not
// discovered by type assertions: Remote drivers hand out an SSH target per
// node, Console drivers a boot console, Plan drivers a dry run of Up.
// Methods a driver cannot do answer ErrUnsupported (embed Unsupported).
package driver

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"time"

	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/sshkeys"
)

// ErrUnsupported is returned for an operation a provider cannot do, such
// as SSH into a local process.
var ErrUnsupported = errors.New("not supported by this provider")

// Info is what a driver is and can do.
type Info struct {
	// Name is the provider name used in lab.yaml and --provider.
	Name string
	// Remote: the nodes are machines reached over SSH (SSHTarget works).
	// The lab then waits for SSH and cloud-init on each node after Up
	// (lab.WaitBooted), deploys the services as systemd units over SSH,
	// and offers ssh, exec over SSH and ssh-config. A driver that is not
	// Remote runs the services itself (local: processes on this machine).
	Remote bool
	// Console: Console writes a node's boot console (serial log).
	Console bool
	// Plan: Plan describes what Up would create or change, running nothing.
	Plan bool
	// ReadyTimeout bounds the wait, after Up (and deploy), for a healthy
	// master and registered slaves; 0 means 60 s.
	ReadyTimeout time.Duration
}

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
	// Log is the node's service log on the host, if it has one (local).
	Log string `json:"log,omitempty"`
	// Console is the node's boot console on the host, if it has one (VMs).
	Console string `json:"console,omitempty"`
	// Started is when the process or VM was started (zero: unknown).
	Started time.Time `json:"started,omitempty"`
	// BootTimeout bounds, from Started, the readiness wait of a Remote
	// node (SSH login and cloud-init done); 0 means 10 minutes.
	BootTimeout time.Duration `json:"-"`
}

// Driver brings up and tears down the nodes of a lab.
type Driver interface {
	// Info says what the driver is and can do.
	Info() Info
	// Up creates and starts every node that is not already running
	// (converges: safe to call again) and returns once each process or VM
	// is started. It does not wait for SSH or the services (infra/lab does).
	Up(ctx context.Context, lab *spec.Lab, progress Progress) error
	// Nodes lists the lab's nodes and whether each is running.
	Nodes(ctx context.Context, lab *spec.Lab) ([]Node, error)
	// Down stops every node and removes everything the driver created
	// (recorded under the lab's state directory), and nothing else.
	// Calling it again does nothing.
	Down(ctx context.Context, lab *spec.Lab) error
	// StopNode stops one node (its process or VM), keeping its files for
	// the next Up; the other nodes are left alone. A stopped node is no
	// error.
	StopNode(ctx context.Context, lab *spec.Lab, node string) error
	// DeleteNode stops one node and removes its files, leaving what the
	// nodes share (a switch) and the other nodes alone. Calling it again
	// does nothing.
	DeleteNode(ctx context.Context, lab *spec.Lab, node string) error
	// Logs writes a node's service log to w (local: the process's log
	// file; VMs: the journal of its calclab unit, see deploy.Journal),
	// following it when follow is set.
	Logs(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error
	// Console writes a node's boot console (kernel, systemd, cloud-init)
	// to w. Info.Console says whether it works.
	Console(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error
	// SSHTarget is where the node's SSH server is reached from this
	// machine. Info.Remote says whether it works.
	SSHTarget(lab *spec.Lab, node string) (sshkeys.Target, error)
	// Plan writes to w what Up would create or change, and runs nothing;
	// with outDir set, a driver whose plan is scripts (hyperv) also writes
	// one file per step there. Info.Plan says whether it works.
	Plan(ctx context.Context, lab *spec.Lab, w io.Writer, outDir string) error
	// ServiceEnv is where and with which settings a node's service runs
	// on this machine, for drivers that are not Remote (local): its
	// working directory and its settings as environment variables
	// (spec.Settings.Env). lab exec runs commands there.
	ServiceEnv(lab *spec.Lab, node string) (dir string, env map[string]string, err error)
}

// Unsupported answers ErrUnsupported for the optional methods; embed it
// in a driver that lacks them.
type Unsupported struct{}

// Console implements Driver.
func (Unsupported) Console(context.Context, *spec.Lab, string, bool, io.Writer) error {
	return ErrUnsupported
}

// SSHTarget implements Driver.
func (Unsupported) SSHTarget(*spec.Lab, string) (sshkeys.Target, error) {
	return sshkeys.Target{}, ErrUnsupported
}

// ServiceEnv implements Driver.
func (Unsupported) ServiceEnv(*spec.Lab, string) (string, map[string]string, error) {
	return "", nil, ErrUnsupported
}

// Plan implements Driver.
func (Unsupported) Plan(context.Context, *spec.Lab, io.Writer, string) error {
	return ErrUnsupported
}

// The SSH key and host keys of a lab whose nodes are reached over SSH
// live in its state directory, the same for every Remote driver.

// KeyDir is the directory of the lab's SSH key pair (sshkeys.EnsureKeyPair).
func KeyDir(stateDir string) string { return filepath.Join(stateDir, "ssh") }

// KnownHostsFile is the lab's trusted-on-first-use host keys.
func KnownHostsFile(stateDir string) string { return filepath.Join(stateDir, "known_hosts") }

// SSHConfigFile is the OpenSSH config infra/lab writes for
// `ssh -F .lab/ssh_config NODE`.
func SSHConfigFile(stateDir string) string { return filepath.Join(stateDir, "ssh_config") }
