// Package testcluster runs calclab's real master and slave binaries as
// processes on free loopback ports, for tests: Main builds the binaries
// once per test binary; Start, StartIn (in a network namespace), StartMaster
// and StartSlave run them with their output captured (and logged when the
// test fails), and stop them when the test ends; WaitSlaves waits until the
// master lists its slaves.
package testcluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/freeport"
	"github.com/calclab/calclab/services/api"
)

var binDir string

// Main is the body of a TestMain: it builds cmd/master and cmd/slave into
// a new temp dir (named after pattern, as os.MkdirTemp does), runs the
// tests, removes the dir and exits with the tests' code. It exits with 1
// when the build fails.
func Main(m *testing.M, pattern string) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/calclab/calclab/cmd/master", "github.com/calclab/calclab/cmd/slave")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// BinDir is the directory Main built the master and slave binaries into.
func BinDir() string { return binDir }

// FreePort returns a loopback port that is free right now, outside the
// kernel's ephemeral range (see package freeport).
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// FreePorts returns n distinct loopback ports that are free right now.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	for range n {
		out = append(out, FreePort(t))
	}
	return out
}

var (
	lazyOnce sync.Once
	lazyDir  string
	lazyErr  error
)

// Binaries builds cmd/master, cmd/slave and the given extra commands
// (import paths) into one temp dir, the first time a test asks (tests
// that skip before asking cost no build), and returns the dir. A TestMain
// removes it with RemoveBinaries after m.Run.
func Binaries(t testing.TB, extra ...string) string {
	t.Helper()
	lazyOnce.Do(func() {
		if lazyDir, lazyErr = os.MkdirTemp("", "calclab-bin"); lazyErr != nil {
			return
		}
		args := append([]string{"build", "-o", lazyDir + "/", "github.com/calclab/calclab/cmd/master", "github.com/calclab/calclab/cmd/slave"}, extra...)
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			lazyErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if lazyErr != nil {
		t.Fatal(lazyErr)
	}
	return lazyDir
}

// RemoveBinaries removes what Binaries built, if anything.
func RemoveBinaries() {
	if lazyDir != "" {
		os.RemoveAll(lazyDir)
	}
}

// FreeAddr returns "127.0.0.1:PORT" for a port that is free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// LockedBuffer collects output written from many goroutines (a process's,
// a logger's) while a test reads it.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (w *LockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// String returns everything written so far.
func (w *LockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// Proc is a master or slave process started by Start.
type Proc struct {
	Name string // as given to Start, e.g. "master" or "slave-1"
	URL  string // http://ADDR

	cmd  *exec.Cmd
	log  *LockedBuffer
	done chan struct{}
}

// Start runs bin (master or slave, from BinDir) with args, waits until it
// answers GET /health on addr, and returns it. When the test ends the
// process is killed and, if the test failed, its output is logged under
// name. The test fails at once if the process exits or does not answer
// within 15s.
func Start(t testing.TB, name, bin, addr string, args ...string) *Proc {
	t.Helper()
	return start(t, name, addr, exec.Command(filepath.Join(binDir, bin), args...))
}

// StartIn is Start with the process in the network namespace netns
// (ip netns exec, which runs it in place: the process is bin itself).
func StartIn(t testing.TB, netns, name, bin, addr string, args ...string) *Proc {
	t.Helper()
	return start(t, name, addr, exec.Command("ip", append([]string{"netns", "exec", netns, filepath.Join(binDir, bin)}, args...)...))
}

func start(t testing.TB, name, addr string, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{Name: name, URL: "http://" + addr, log: new(LockedBuffer), done: make(chan struct{}), cmd: cmd}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", name, p.Log())
		}
	})
	const wait = 15 * time.Second
	deadline := time.Now().Add(wait)
	for {
		res, err := http.Get(p.URL + "/health")
		if err == nil {
			res.Body.Close()
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %s", name, p.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering on %s after %s: %v", name, addr, wait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartMaster starts a master on a free port with its data in dataDir,
// health checks and heartbeats every 200ms, and the extra flags (which
// may override those).
func StartMaster(t testing.TB, dataDir string, extra ...string) *Proc {
	t.Helper()
	addr := FreeAddr(t)
	args := append([]string{"--listen", addr, "--data-dir", dataDir, "--health-interval", "200ms", "--heartbeat-interval", "200ms"}, extra...)
	return Start(t, "master", "master", addr, args...)
}

// StartSlave starts slave id on a free port, registering with masterURL,
// with the extra flags.
func StartSlave(t testing.TB, masterURL, id string, extra ...string) *Proc {
	t.Helper()
	addr := FreeAddr(t)
	args := append([]string{"--listen", addr, "--master", masterURL, "--id", id}, extra...)
	return Start(t, id, "slave", addr, args...)
}

// Kill kills the process with SIGKILL and waits until it is gone.
func (p *Proc) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Signal sends sig to the process (e.g. SIGSTOP to freeze it, SIGCONT to
// let it go on).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and fails the test if the process has not exited
// 20s later.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not stop within 20s of SIGTERM", p.Name)
	}
}

// Log returns what the process has written to stdout and stderr so far.
func (p *Proc) Log() string { return p.log.String() }

// WaitSlaves waits up to 15s until GET masterURL/slaves lists each slave
// of want with its status (a busy slave counts as free), and fails the
// test otherwise.
func WaitSlaves(t testing.TB, masterURL string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := map[string]string{}
		slaves, err := listSlaves(masterURL)
		for _, s := range slaves {
			st := s.Status
			if st == api.SlaveBusy {
				st = api.SlaveFree
			}
			got[s.ID] = st
		}
		ok := err == nil
		for id, st := range want {
			if got[id] != st {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("GET %s/slaves: %v; want slaves %v", masterURL, err, want)
			}
			t.Fatalf("slaves %v, want %v", got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func listSlaves(masterURL string) ([]api.SlaveInfo, error) {
	res, err := http.Get(masterURL + "/slaves")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", res.Status)
	}
	var slaves []api.SlaveInfo
	err = json.NewDecoder(res.Body).Decode(&slaves)
	return slaves, err
}
