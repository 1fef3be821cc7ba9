package benchkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/calclab/calclab/internal/freeport"
)

// reservedPorts are never used: a developer's lab may be running there
// (master 5000, slaves 6001 and 6002).
var reservedPorts = map[int]bool{5000: true, 6001: true, 6002: true}

// FreePort returns a free loopback port (package freeport) that is neither
// reserved for a developer's lab (5000, 6001, 6002) nor in taken, and adds
// it to taken. Another process may still take it before our child binds
// it; Cluster.StartService retries then.
func FreePort(taken map[int]bool) (int, error) {
	for range 100 {
		port, err := freeport.Loopback()
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		if reservedPorts[port] || taken[port] {
			continue
		}
		taken[port] = true
		return port, nil
	}
	return 0, errors.New("find a free port: no luck after 100 tries")
}

// Proc is one child process, its output going to a log file.
type Proc struct {
	name    string
	prog    string // our program's name, for messages
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // set before done is closed

	// CountChildren makes SnapCPU count the CPU of the process's children
	// too (nginx's workers).
	CountChildren bool
}

// childEnv is our environment without CALCLAB_* variables, which the
// services read as flag defaults (a developer's CALCLAB_TOKEN must not leak
// into the benchmark).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CALCLAB_") {
			env = append(env, kv)
		}
	}
	return env
}

// StartProc starts bin with args as the child called name, its stdout and
// stderr going to logPath, without our CALCLAB_* environment variables.
// The child runs in its own process group (a Ctrl-C at the terminal
// reaches only us, and we stop the children in order) and is killed by the
// kernel if we are killed outright (Pdeathsig).
func (c *Cluster) StartProc(name, logPath, bin string, args ...string) (*Proc, error) {
	return c.StartProcEnv(name, logPath, nil, bin, args...)
}

// StartProcEnv is StartProc with env ("NAME=value") added to the child's
// environment.
func (c *Cluster) StartProcEnv(name, logPath string, env []string, bin string, args ...string) (*Proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(childEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{name: name, prog: c.prog, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the name the process was started as ("master", "slave-1").
func (p *Proc) Name() string { return p.name }

// LogPath is the file holding the process's output.
func (p *Proc) LogPath() string { return p.logPath }

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited says whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends sig, waits up to grace, then kills the whole process group.
// A nil or ended process is left alone.
func (p *Proc) Stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	fmt.Fprintf(os.Stderr, "%s: %s did not stop within %s; killing it\n", p.prog, p.name, grace)
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DescribeExit says how the process ended, with the last lines of its log.
func (p *Proc) DescribeExit() string {
	msg := fmt.Sprintf("%s exited (%v)", p.name, p.err)
	if t := p.Tail(15); t != "" {
		msg += "; last lines of its log:\n" + t
	}
	return msg
}

// ProbeClient is the HTTP client of readiness checks: short timeout, no
// keep-alive.
var ProbeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// WaitFor polls check every 50ms until it succeeds, p exits, ctx ends or
// timeout passes; what names the awaited condition in the error. p may be
// nil.
func WaitFor(ctx context.Context, p *Proc, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p != nil && p.Exited() {
			return errors.New(p.DescribeExit())
		}
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not ready after %s: %v", what, timeout, last)
			if p != nil {
				if t := p.Tail(15); t != "" {
					msg += "\nlast lines of the " + p.name + " log:\n" + t
				}
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// GetOK fetches url with ProbeClient and returns the body (up to 1 MiB) of
// a 200 reply; any other status is an error quoting the body.
func GetOK(url string) ([]byte, error) {
	res, err := ProbeClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", url, res.StatusCode, bytes.TrimSpace(data))
	}
	return data, nil
}

// Healthy returns a WaitFor check that GET url/health answers 200.
func Healthy(url string) func() error {
	return func() error {
		_, err := GetOK(url + "/health")
		return err
	}
}
