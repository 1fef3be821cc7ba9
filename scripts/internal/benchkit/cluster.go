package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/calclab/calclab/services/api"
)

// Cluster is everything a benchmark starts: a master, two slaves and any
// Extra processes, with their logs in a temp dir. Close stops it all and
// removes the dir.
type Cluster struct {
	prog     string
	progress func(format string, args ...any)
	Dir      string // the temp dir: logs, the master's data
	ports    map[int]bool
	died     map[string]bool

	Master *Proc
	Slaves [2]*Proc
	// Extra are further children the program started (benchcalc's nginx);
	// Close stops them together with the slaves, before the master.
	Extra []*Proc

	MasterURL string
	SlaveURLs [2]string
	// PprofURLs are the services' net/http/pprof addresses (when
	// StartCalclab was asked for them), by process name.
	PprofURLs map[string]string

	// Capacity is each slave's capacity as the master reports it.
	Capacity [2]int

	// MasterProcs, when positive, is the master's GOMAXPROCS (set before
	// StartCalclab); 0 leaves Go's default, one per CPU of this machine.
	MasterProcs int
	// MasterGOMAXPROCS is the GOMAXPROCS the started master reports in
	// its metrics (go_sched_gomaxprocs_threads).
	MasterGOMAXPROCS int
}

// NewCluster creates the temp dir (prog-*) of a cluster that has nothing
// started yet; prog is the program's name, which starts the messages it
// prints.
func NewCluster(prog string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", prog+"-")
	if err != nil {
		return nil, err
	}
	return &Cluster{prog: prog, progress: Progress(prog), Dir: dir, ports: map[int]bool{}, died: map[string]bool{}, PprofURLs: map[string]string{}}, nil
}

// FreePort returns a free loopback port no other child of the cluster was
// given (see the function FreePort).
func (c *Cluster) FreePort() (int, error) { return FreePort(c.ports) }

// Close stops every child (the Extra ones and the slaves first, so the
// slaves can still deregister from the master) and removes the temp dir.
func (c *Cluster) Close() {
	first := append(append([]*Proc(nil), c.Extra...), c.Slaves[:]...)
	done := make(chan struct{}, len(first))
	for _, p := range first {
		go func() {
			p.Stop(syscall.SIGTERM, 10*time.Second)
			done <- struct{}{}
		}()
	}
	for range first {
		<-done
	}
	c.Master.Stop(syscall.SIGTERM, 15*time.Second)
	if err := os.RemoveAll(c.Dir); err != nil {
		fmt.Fprintf(os.Stderr, "%s: remove %s: %v\n", c.prog, c.Dir, err)
	}
}

// Shutdown is Close with progress lines on stderr: what the program's
// deferred clean-up calls.
func (c *Cluster) Shutdown() {
	t := time.Now()
	c.progress("stopping everything it started")
	c.Close()
	c.progress("stopped in %s; removed %s", time.Since(t).Round(time.Millisecond), c.Dir)
}

// StartService starts a process on a fresh free port and waits until ready
// says so; if the port was taken meanwhile, it retries on another one.
func (c *Cluster) StartService(ctx context.Context, name string, start func(port int) (*Proc, error), ready func(p *Proc, port int) error) (*Proc, int, error) {
	var lastErr error
	for range 3 {
		port, err := c.FreePort()
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
		p.Stop(syscall.SIGTERM, 5*time.Second)
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		c.progress("%s: port %d was taken meanwhile; retrying on another", name, port)
	}
	return nil, 0, fmt.Errorf("%s: %w", name, lastErr)
}

// pprofArgs gives a service a --pprof-listen port when profiling is on.
func (c *Cluster) pprofArgs(name string, on bool) ([]string, error) {
	if !on {
		return nil, nil
	}
	port, err := c.FreePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c.PprofURLs[name] = "http://" + addr
	return []string{"--pprof-listen", addr}, nil
}

// StartCalclab starts binDir's master and two slaves (slave-1, slave-2) at
// --log-level warn with the extra flags given, and waits until GET /slaves
// lists both as free. With pprof, each service also gets a --pprof-listen
// port (PprofURLs). It reports what it does on stderr.
func (c *Cluster) StartCalclab(ctx context.Context, binDir string, masterFlags, slaveFlags []string, pprof bool) error {
	c.progress("starting a master and 2 slaves on free loopback ports (temp dir %s)", c.Dir)
	masterBin, slaveBin := filepath.Join(binDir, "master"), filepath.Join(binDir, "slave")
	for _, b := range []string{masterBin, slaveBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s not found (run `make build` first, or set --bin-dir): %w", b, err)
		}
	}
	var err error
	c.Master, _, err = c.StartService(ctx, "master", func(port int) (*Proc, error) {
		c.MasterURL = fmt.Sprintf("http://127.0.0.1:%d", port)
		args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", filepath.Join(c.Dir, "master-data"), "--log-level", "warn"}
		pp, err := c.pprofArgs("master", pprof)
		if err != nil {
			return nil, err
		}
		args = append(append(args, pp...), masterFlags...)
		var env []string
		if c.MasterProcs > 0 {
			env = []string{fmt.Sprintf("GOMAXPROCS=%d", c.MasterProcs)}
		}
		return c.StartProcEnv("master", filepath.Join(c.Dir, "master.log"), env, masterBin, args...)
	}, func(p *Proc, port int) error {
		return WaitFor(ctx, p, 15*time.Second, "master", Healthy(c.MasterURL))
	})
	if err != nil {
		return err
	}
	for i := range c.Slaves {
		id := fmt.Sprintf("slave-%d", i+1)
		c.Slaves[i], _, err = c.StartService(ctx, id, func(port int) (*Proc, error) {
			c.SlaveURLs[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
			args := []string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--master", c.MasterURL, "--id", id, "--log-level", "warn"}
			pp, err := c.pprofArgs(id, pprof)
			if err != nil {
				return nil, err
			}
			args = append(append(args, pp...), slaveFlags...)
			return c.StartProc(id, filepath.Join(c.Dir, id+".log"), slaveBin, args...)
		}, func(p *Proc, port int) error {
			return WaitFor(ctx, p, 15*time.Second, id, Healthy(c.SlaveURLs[i]))
		})
		if err != nil {
			return err
		}
	}
	err = WaitFor(ctx, c.Master, 20*time.Second, "GET /slaves listing slave-1 and slave-2 as free", c.slavesFree)
	if err == nil {
		err = c.readMasterProcs()
	}
	if err == nil {
		c.progress("master %s, slave-1 %s, slave-2 %s", c.MasterURL, c.SlaveURLs[0], c.SlaveURLs[1])
	}
	return err
}

// readMasterProcs records the master's GOMAXPROCS from its metrics and
// checks that it is MasterProcs when that was set.
func (c *Cluster) readMasterProcs() error {
	data, err := GetOK(c.MasterURL + "/metrics")
	if err != nil {
		return err
	}
	const name = "go_sched_gomaxprocs_threads "
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, name); ok {
			if _, err := fmt.Sscan(v, &c.MasterGOMAXPROCS); err != nil {
				return fmt.Errorf("master metrics: %q: %w", strings.TrimSpace(line), err)
			}
			if c.MasterProcs > 0 && c.MasterGOMAXPROCS != c.MasterProcs {
				return fmt.Errorf("the master runs with GOMAXPROCS %d, not the %d it was started with", c.MasterGOMAXPROCS, c.MasterProcs)
			}
			return nil
		}
	}
	return fmt.Errorf("the master's metrics have no %s", strings.TrimSpace(name))
}

// slavesFree checks that the master lists both slaves as free, at the
// addresses they were started on, and records their capacity.
func (c *Cluster) slavesFree() error {
	data, err := GetOK(c.MasterURL + "/slaves")
	if err != nil {
		return err
	}
	var list []api.SlaveInfo
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("decode /slaves: %w", err)
	}
	for i := range c.Slaves {
		id := fmt.Sprintf("slave-%d", i+1)
		found := false
		for _, s := range list {
			if s.ID == id {
				if s.Status != api.SlaveFree {
					return fmt.Errorf("%s is %q", id, s.Status)
				}
				if s.Webhook != c.SlaveURLs[i] {
					return fmt.Errorf("%s is registered at %s, expected %s", id, s.Webhook, c.SlaveURLs[i])
				}
				c.Capacity[i] = s.Capacity
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s is not registered yet", id)
		}
	}
	for i, p := range c.Slaves {
		if p.Exited() {
			return fmt.Errorf("slave-%d: %s", i+1, p.DescribeExit())
		}
	}
	return nil
}

// Procs lists the children that were started: the master, the slaves,
// then the Extra ones.
func (c *Cluster) Procs() []*Proc {
	var out []*Proc
	for _, p := range append([]*Proc{c.Master, c.Slaves[0], c.Slaves[1]}, c.Extra...) {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// Deaths returns a message for each child that has exited since the last
// call, saying it died during the named step; nil when all still run.
func (c *Cluster) Deaths(during string) []string {
	var out []string
	for _, p := range c.Procs() {
		if p.Exited() && !c.died[p.name] {
			c.died[p.name] = true
			out = append(out, fmt.Sprintf("%s died during %s: %s", p.name, during, p.DescribeExit()))
		}
	}
	return out
}

// LogFile is a log to summarize besides the children's own.
type LogFile struct{ Name, Path string }

// LogSummary reports what the children wrote to their logs, then what the
// extra logs hold (the services run at --log-level warn, so anything there
// is worth a look): the number of lines and the first few of each
// non-empty log.
func (c *Cluster) LogSummary(extra ...LogFile) []string {
	var logs []LogFile
	for _, p := range c.Procs() {
		logs = append(logs, LogFile{p.name, p.logPath})
	}
	var out []string
	for _, l := range append(logs, extra...) {
		data, err := os.ReadFile(l.Path)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		out = append(out, fmt.Sprintf("%s: %d log lines, first: %s", l.Name, len(lines), lines[0]))
		for _, l := range lines[1:min(3, len(lines))] {
			out = append(out, "    "+l)
		}
	}
	return out
}
