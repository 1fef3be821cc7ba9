package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/calclab/calclab/services/api"
)

// Process management, adapted from scripts/benchcalc/procs.go (a package
// main cannot be imported): free loopback ports, children in their own
// process group with Pdeathsig, logs in a temp dir removed at exit.

// reservedPorts are never used: a developer's lab may be running there
// (master 5000, slaves 6001 and 6002).
var reservedPorts = map[int]bool{5000: true, 6001: true, 6002: true}

// freePort asks the kernel for a free loopback port. Another process may
// still take it before our child binds it; startService retries then.
func freePort(taken map[int]bool) (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if reservedPorts[port] || taken[port] {
			continue
		}
		taken[port] = true
		return port, nil
	}
	return 0, errors.New("find a free port: no luck after 100 tries")
}

// proc is one child process, its output going to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // set before done is closed
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

func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv()
	// Own process group: a Ctrl-C at the terminal reaches only us, and we
	// stop the children in order. Pdeathsig: if we are killed outright,
	// the kernel kills them too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace, then kills the whole process group.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	fmt.Fprintf(os.Stderr, "benchmandel: %s did not stop within %s; killing it\n", p.name, grace)
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string {
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

func (p *proc) describeExit() string {
	msg := fmt.Sprintf("%s exited (%v)", p.name, p.err)
	if t := p.tail(15); t != "" {
		msg += "; last lines of its log:\n" + t
	}
	return msg
}

// cluster is everything the benchmark starts: a master and two slaves.
// Close stops it all and removes the temp dir.
type cluster struct {
	dir    string
	ports  map[int]bool
	master *proc
	slaves [2]*proc

	masterURL string
	slaveURLs [2]string
	// pprofURLs are the services' net/http/pprof addresses (--profile-dir),
	// by process name.
	pprofURLs map[string]string

	// capacity is each slave's capacity as the master reports it.
	capacity [2]int
}

func newCluster() (*cluster, error) {
	dir, err := os.MkdirTemp("", "benchmandel-")
	if err != nil {
		return nil, err
	}
	return &cluster{dir: dir, ports: map[int]bool{}, pprofURLs: map[string]string{}}, nil
}

// Close stops every child (slaves first, so they can still deregister from
// the master) and removes the temp dir.
func (c *cluster) Close() {
	done := make(chan struct{}, 2)
	for _, p := range c.slaves {
		go func() {
			p.stop(syscall.SIGTERM, 10*time.Second)
			done <- struct{}{}
		}()
	}
	for range 2 {
		<-done
	}
	c.master.stop(syscall.SIGTERM, 15*time.Second)
	if err := os.RemoveAll(c.dir); err != nil {
		fmt.Fprintf(os.Stderr, "benchmandel: remove %s: %v\n", c.dir, err)
	}
}

var probeClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// waitFor polls check every 50ms until it succeeds, p exits, ctx ends or
// timeout passes.
func waitFor(ctx context.Context, p *proc, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p != nil && p.exited() {
			return errors.New(p.describeExit())
		}
		if last = check(); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not ready after %s: %v", what, timeout, last)
			if p != nil {
				if t := p.tail(15); t != "" {
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

func getOK(url string) ([]byte, error) {
	res, err := probeClient.Get(url)
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

// startService starts a process on a fresh free port and waits until ready
// says so; if the port was taken meanwhile, it retries on another one.
func (c *cluster) startService(ctx context.Context, name string, start func(port int) (*proc, error), ready func(p *proc, port int) error) (*proc, int, error) {
	var lastErr error
	for range 3 {
		port, err := freePort(c.ports)
		if err != nil {
			return nil, 0, err
		}
		p, err := start(port)
		if err != nil {
			return nil, 0, err
		}
		err = ready(p, port)
		if err == nil {
			return p, port, nil
		}
		lastErr = err
		p.stop(syscall.SIGTERM, 5*time.Second)
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		fmt.Fprintf(os.Stderr, "benchmandel: %s: port %d was taken meanwhile; retrying on another\n", name, port)
	}
	return nil, 0, fmt.Errorf("%s: %w", name, lastErr)
}

func healthy(url string) func() error {
	return func() error {
		_, err := getOK(url + "/health")
		return err
	}
}

// pprofArgs gives a service a --pprof-listen port when profiling is on.
func (c *cluster) pprofArgs(name string, on bool) ([]string, error) {
	if !on {
		return nil, nil
	}
	port, err := freePort(c.ports)
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c.pprofURLs[name] = "http://" + addr
	return []string{"--pprof-listen", addr}, nil
}

// startCalclab starts the master and two slaves and waits until GET /slaves
// lists both as free.
func (c *cluster) startCalclab(ctx context.Context, binDir string, masterFlags, slaveFlags []string, pprof bool) error {
	masterBin, slaveBin := filepath.Join(binDir, "master"), filepath.Join(binDir, "slave")
	for _, b := range []string{masterBin, slaveBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s not found (run `make build` first, or set --bin-dir): %w", b, err)
		}
	}
	var err error
	c.master, _, err = c.startService(ctx, "master", func(port int) (*proc, error) {
		c.masterURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", filepath.Join(c.dir, "master-data"), "--log-level", "warn"}
		pp, err := c.pprofArgs("master", pprof)
		if err != nil {
			return nil, err
		}
		args = append(append(args, pp...), masterFlags...)
		return startProc("master", filepath.Join(c.dir, "master.log"), masterBin, args...)
	}, func(p *proc, port int) error {
		return waitFor(ctx, p, 15*time.Second, "master", healthy(c.masterURL))
	})
	if err != nil {
		return err
	}
	for i := range c.slaves {
		id := fmt.Sprintf("slave-%d", i+1)
		c.slaves[i], _, err = c.startService(ctx, id, func(port int) (*proc, error) {
			c.slaveURLs[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
			args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--master", c.masterURL, "--id", id, "--log-level", "warn"}
			pp, err := c.pprofArgs(id, pprof)
			if err != nil {
				return nil, err
			}
			args = append(append(args, pp...), slaveFlags...)
			return startProc(id, filepath.Join(c.dir, id+".log"), slaveBin, args...)
		}, func(p *proc, port int) error {
			return waitFor(ctx, p, 15*time.Second, id, healthy(c.slaveURLs[i]))
		})
		if err != nil {
			return err
		}
	}
	return waitFor(ctx, c.master, 20*time.Second, "GET /slaves listing slave-1 and slave-2 as free", func() error {
		data, err := getOK(c.masterURL + "/slaves")
		if err != nil {
			return err
		}
		var list []api.SlaveInfo
		if err := json.Unmarshal(data, &list); err != nil {
			return fmt.Errorf("decode /slaves: %w", err)
		}
		for i := range c.slaves {
			id := fmt.Sprintf("slave-%d", i+1)
			found := false
			for _, s := range list {
				if s.ID == id {
					if s.Status != api.SlaveFree {
						return fmt.Errorf("%s is %q", id, s.Status)
					}
					if s.Webhook != c.slaveURLs[i] {
						return fmt.Errorf("%s is registered at %s, expected %s", id, s.Webhook, c.slaveURLs[i])
					}
					c.capacity[i] = s.Capacity
					found = true
				}
			}
			if !found {
				return fmt.Errorf("%s is not registered yet", id)
			}
		}
		for i, p := range c.slaves {
			if p.exited() {
				return fmt.Errorf("slave-%d: %s", i+1, p.describeExit())
			}
		}
		return nil
	})
}

// procs lists the children that were started.
func (c *cluster) procs() []*proc {
	var out []*proc
	for _, p := range []*proc{c.master, c.slaves[0], c.slaves[1]} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// logSummary reports what the services wrote to their logs (they run at
// --log-level warn, so anything there is worth a look): the number of lines
// and the first few of each log.
func (c *cluster) logSummary() []string {
	var out []string
	for _, p := range c.procs() {
		data, err := os.ReadFile(p.logPath)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		out = append(out, fmt.Sprintf("%s: %d log lines, first: %s", p.name, len(lines), lines[0]))
		for _, l := range lines[1:min(3, len(lines))] {
			out = append(out, "    "+l)
		}
	}
	return out
}
