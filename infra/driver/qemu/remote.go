package qemu

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/spec"
)

// SSHTarget implements driver.Remote.
func (d *Driver) SSHTarget(lab *spec.Lab, node string) (driver.SSHTarget, error) {
	ep, err := d.Endpoint(lab, node)
	if err != nil {
		return driver.SSHTarget{}, err
	}
	return driver.SSHTarget{Addr: ep.Addr, User: ep.User, KeyDir: ep.KeyDir, KnownHosts: ep.KnownHosts}, nil
}

// ServiceLogs implements driver.Remote: the node's calclab unit journal,
// read over SSH with journalctl (followed with -f).
func (d *Driver) ServiceLogs(ctx context.Context, lab *spec.Lab, node string, follow bool, w io.Writer) error {
	n, ok := lab.Node(node)
	if !ok {
		return fmt.Errorf("no node %q in %s", node, lab.File)
	}
	if _, err := d.Endpoint(lab, node); err != nil {
		return err
	}
	args := []string{"-F", d.sshConfigPath(), "-o", "BatchMode=yes", node, "--",
		"sudo", "journalctl", "--no-pager", "-o", "short-iso", "-u", "calclab-" + n.Role + ".service"}
	if follow {
		args = append(args, "-f")
	}
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Stdout, cmd.Stderr = w, os.Stderr
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("journal of %s over ssh: %w", node, err)
	}
	return nil
}
