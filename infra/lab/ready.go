package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/sshkeys"
)

// DefaultBootTimeout bounds WaitBooted for a node whose driver gives no
// BootTimeout.
const DefaultBootTimeout = 10 * time.Minute

// WaitBooted waits, for a node of a Remote driver, until its SSH server
// accepts the lab's key (step "ssh") and then until cloud-init has
// finished in it (step "cloud-init"), the same for every VM provider. Times
// are from the node's Started; the wait ends at Started+BootTimeout, or
// early when the driver reports the node no longer running (with the last
// lines of its console, when it has one).
func WaitBooted(ctx context.Context, d driver.Driver, lab *spec.Lab, node string, progress driver.Progress) error {
	report := func(s driver.Step) {
		if progress != nil {
			progress(s)
		}
	}
	n, err := nodeOf(ctx, d, lab, node)
	if err != nil {
		return err
	}
	t, err := d.SSHTarget(lab, node)
	if err != nil {
		return err
	}
	timeout := n.BootTimeout
	if timeout <= 0 {
		timeout = DefaultBootTimeout
	}
	started := n.Started
	if started.IsZero() {
		started = time.Now()
	}
	ctx, cancel := context.WithDeadline(ctx, started.Add(timeout))
	defer cancel()
	hint := n.Console
	fail := func(step string, err error) error {
		report(driver.Step{Node: node, Step: step, Err: err, Elapsed: time.Since(started), Hint: hint})
		if hint != "" {
			return fmt.Errorf("node %s: %s: %w (see %s)", node, step, err, hint)
		}
		return fmt.Errorf("node %s: %s: %w", node, step, err)
	}
	gone := func() error {
		cur, err := nodeOf(ctx, d, lab, node)
		if err != nil || cur.Running {
			return nil
		}
		msg := "the VM stopped"
		if cur.Console != "" {
			msg += "; last console lines:\n" + Tail(cur.Console, 15)
		}
		return errors.New(msg)
	}

	report(driver.Step{Node: node, Step: "ssh"})
	var client *ssh.Client
	var last error
	for client == nil {
		if err := gone(); err != nil {
			return fail("ssh", err)
		}
		c, err := t.Dial(ctx)
		if err == nil {
			client = c
			break
		}
		last = err
		select {
		case <-ctx.Done():
			err := fmt.Errorf("no SSH login at %s after %s (last: %v)", t.Addr, timeout, last)
			if errors.Is(ctx.Err(), context.Canceled) {
				err = ctx.Err()
			}
			return fail("ssh", err)
		case <-time.After(2 * time.Second):
		}
	}
	report(driver.Step{Node: node, Step: "ssh", Done: true, Elapsed: time.Since(started), Hint: fmt.Sprintf("%s@%s, since boot", t.User, t.Addr)})

	report(driver.Step{Node: node, Step: "cloud-init"})
	// cloud-init restarts sshd while it runs (set-passwords), so a session
	// can end without an answer: ask again on a new connection then.
	for attempt := 1; ; attempt++ {
		out, err := sshkeys.Run(ctx, client, "cloud-init status --wait --long")
		client.Close()
		status := strings.TrimSpace(strings.TrimLeft(string(out), ".\n"))
		if strings.Contains(status, "status: done") {
			break
		}
		if strings.Contains(status, "status: error") || strings.Contains(status, "status: degraded") {
			hint = fmt.Sprintf("%s, or lab ssh %s -- sudo cat /var/log/cloud-init.log", or(n.Console, "the console"), node)
			return fail("cloud-init", fmt.Errorf("cloud-init did not finish cleanly:\n%s", status))
		}
		for client = nil; client == nil; {
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
			if ctx.Err() != nil || attempt >= 10 {
				switch {
				case errors.Is(ctx.Err(), context.DeadlineExceeded):
					err = fmt.Errorf("cloud-init not done %s after boot", timeout)
				case ctx.Err() != nil:
					err = ctx.Err()
				case err == nil:
					err = fmt.Errorf("cloud-init status said %q", status)
				}
				return fail("cloud-init", err)
			}
			client, _ = t.Dial(ctx)
		}
	}
	report(driver.Step{Node: node, Step: "cloud-init", Done: true, Elapsed: time.Since(started), Hint: "done, since boot"})
	return nil
}

// waitBooted runs WaitBooted for every node at once (they boot in parallel).
func (l *Lab) waitBooted(ctx context.Context) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs = make([]error, len(l.Spec.Nodes))
	)
	report := func(s driver.Step) {
		mu.Lock()
		defer mu.Unlock()
		l.progress(s)
	}
	for i, n := range l.Spec.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = WaitBooted(ctx, l.Driver, l.Spec, n.Name, report)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func nodeOf(ctx context.Context, d driver.Driver, lab *spec.Lab, name string) (driver.Node, error) {
	nodes, err := d.Nodes(ctx, lab)
	if err != nil {
		return driver.Node{}, err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return driver.Node{}, fmt.Errorf("no node %q in %s (nodes: %s)", name, lab.File, strings.Join(lab.NodeNames(), ", "))
}

// Tail returns the last n lines of a file ("" when it cannot be read).
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func or(s, def string) string {
	if s != "" {
		return s
	}
	return def
}
