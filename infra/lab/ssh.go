package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/provision/sshkeys"
)

// notRemote is the error for an SSH verb on a provider whose nodes are
// not machines.
func (l *Lab) notRemote(verb string) error {
	return fmt.Errorf("%s with the %s provider: %w (its nodes are processes on this machine; see lab logs, or use --provider qemu for VMs)", verb, l.Driver.Info().Name, driver.ErrUnsupported)
}

// targets are the SSH targets of the nodes that have a machine now.
func (l *Lab) targets() []sshkeys.Target {
	var out []sshkeys.Target
	for _, n := range l.Spec.Nodes {
		if t, err := l.Driver.SSHTarget(l.Spec, n.Name); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// SSHConfig renders an OpenSSH client config with one Host entry per node
// that has a machine, for `ssh -F .lab/ssh_config NODE`.
func (l *Lab) SSHConfig() (string, error) {
	if !l.Driver.Info().Remote {
		return "", l.notRemote("ssh-config")
	}
	return sshkeys.OpenSSHConfig(fmt.Sprintf("calclab lab %s (%s provider); use: ssh -F %s NODE",
		l.Spec.Name, l.Driver.Info().Name, l.sshConfigFile()), l.targets())
}

func (l *Lab) sshConfigFile() string {
	p, err := filepath.Abs(driver.SSHConfigFile(l.StateDir))
	if err != nil {
		return driver.SSHConfigFile(l.StateDir)
	}
	return p
}

// writeSSHConfig writes the lab's ssh_config into the state directory.
func (l *Lab) writeSSHConfig() error {
	cfg, err := l.SSHConfig()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.StateDir, 0o755); err != nil {
		return err
	}
	// Atomic: `lab ssh` on several nodes at once (the VM test does) must
	// not let one ssh read the file while another truncated it.
	return sshkeys.WriteFileAtomic(l.sshConfigFile(), []byte(cfg), 0o644)
}

// SSH runs OpenSSH's ssh with the lab's ssh_config on node (an interactive
// shell when cmd is empty), attached to stdin, stdout and stderr.
func (l *Lab) SSH(ctx context.Context, node string, cmd []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if !l.Driver.Info().Remote {
		return l.notRemote("ssh")
	}
	n, err := nodeOf(ctx, l.Driver, l.Spec, node)
	if err != nil {
		return err
	}
	if !n.Running {
		return fmt.Errorf("node %s is not running (run lab up)", node)
	}
	if err := l.writeSSHConfig(); err != nil {
		return err
	}
	bin, err := exec.LookPath("ssh")
	if err != nil {
		return errors.New("ssh not found: install OpenSSH's client (apt-get install openssh-client)")
	}
	args := []string{"-F", l.sshConfigFile(), node}
	if len(cmd) > 0 {
		args = append(append(args, "--"), cmd...)
	}
	c := exec.CommandContext(ctx, bin, args...)
	c.Stdin, c.Stdout, c.Stderr = stdin, stdout, stderr
	return c.Run()
}
