// Command benchcalc benchmarks calclab's calculator on loopback, in one run:
//
//	(1)  direct       POST {slave-1}/compute: one slave, no master
//	(2)  master       POST {master}/submit-task: the master balancing over 2 slaves
//	(2w) master-wrk   (2) with wrk as the load generator
//	(2h) master-half  (2) again, open loop at half of (2)'s throughput
//	(3)  nginx        POST {nginx}/compute: nginx least_conn over the same 2 slaves
//	(3w) nginx-wrk    (3) with wrk as the load generator
//	(4)  batch        POST {master}/submit-batch with --batch-size expressions
//	(5)  master-50    (2h) at (2h)'s rate with 50 slaves (--many-slaves): run last
//
// It starts its own master, two slaves and nginx on free random loopback
// ports (never 5000, 6001 or 6002), and for (5) 48 more slaves, which it
// stops after that scenario; it stops everything at exit (also on error or
// Ctrl-C) and removes its temp dir. The wrk rows need Debian's wrk
// (apt-get install wrk; skipped without it): 2 threads, --concurrency
// connections, a Lua script in the temp dir giving every request its own
// expression. `make bench-calc` runs it after `make build`; --help lists
// the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
)

type config struct {
	duration     time.Duration
	warmup       time.Duration
	concurrency  int
	batchSize    int
	batchConc    int
	binDir       string
	only         map[string]bool
	markdown     bool
	nginxBin     string
	nginxWorkers string
	halfRate     float64
	openPool     int
	timeout      time.Duration
	masterFlags  []string
	masterProcs  int
	slaveFlags   []string
	wrkBin       string
	manySlaves   int
	slices       int
}

// scenario keys in run order, with the aliases --only accepts.
var (
	scenarioKeys = []string{"direct", "master", "master-wrk", "master-half", "nginx", "nginx-wrk", "batch", "master-50"}
	aliases      = map[string]string{"1": "direct", "2": "master", "2w": "master-wrk", "2h": "master-half", "half": "master-half",
		"3": "nginx", "3w": "nginx-wrk", "4": "batch", "5": "master-50", "50": "master-50"}
)

const usageHead = `benchcalc: calclab calculator benchmark, one run, with the targets of issue 11.

Scenarios (--only takes the names or the numbers):
  (1)  direct       POST slave-1/compute: one slave, no master
  (2)  master       POST master/submit-task (synchronous), the master over 2 slaves
  (2w) master-wrk   (2) with wrk as the load generator
  (2h) master-half  (2) open loop at half of (2)'s throughput (or --half-rate)
  (3)  nginx        POST nginx/compute: nginx least_conn over the same 2 slaves
  (3w) nginx-wrk    (3) with wrk as the load generator
  (4)  batch        POST master/submit-batch with --batch-size expressions
  (5)  master-50    (2h) at the same rate with --many-slaves slaves (run last)

Starts its own master, 2 slaves and nginx on free loopback ports (and the extra slaves
of (5), stopped after it), runs each scenario for --duration after --warmup, and prints
the tables to stdout (progress goes to stderr). The wrk rows need Debian's wrk
(apt-get install wrk) and are skipped without it.

Usage: go run ./scripts/benchcalc [flags]     (make bench-calc)

Flags:
`

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := benchkit.NewFlagSet("benchcalc", usageHead, stderr)
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured duration of each scenario")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each scenario")
	fs.IntVar(&cfg.concurrency, "concurrency", 32, "closed-loop workers (keep-alive connections) of scenarios 1-3")
	fs.IntVar(&cfg.batchSize, "batch-size", 10000, "expressions per /submit-batch request (scenario 4)")
	fs.IntVar(&cfg.batchConc, "batch-concurrency", 2, "closed-loop workers of the batch scenario")
	fs.StringVar(&cfg.binDir, "bin-dir", "./bin", "directory holding the master and slave binaries (make build)")
	only := fs.String("only", "", "comma list of scenarios to run: "+strings.Join(scenarioKeys, ",")+" (or 1,2,2w,2h,3,3w,4,5); empty: all")
	fs.BoolVar(&cfg.markdown, "markdown", false, "print the results as Markdown tables (for docs/benchmarks.md)")
	fs.StringVar(&cfg.nginxBin, "nginx", "/usr/sbin/nginx", "nginx binary (Debian package nginx / nginx-light)")
	fs.StringVar(&cfg.nginxWorkers, "nginx-workers", "auto", "nginx worker_processes: auto (one per CPU) or a number")
	fs.Float64Var(&cfg.halfRate, "half-rate", 0, "request rate of master-half and master-50; 0: half of the throughput measured in master")
	fs.StringVar(&cfg.wrkBin, "wrk", "wrk", "wrk binary (Debian package wrk) for master-wrk and nginx-wrk")
	fs.IntVar(&cfg.manySlaves, "many-slaves", 50, "slaves of master-50 (slave-1, slave-2 and this many minus 2 more)")
	fs.IntVar(&cfg.slices, "slices", 5, "measure master with nginx, and master-wrk with nginx-wrk, in this many alternating slices of --duration/slices each (at least 1 s for wrk) after one warm-up each, so that the machine's drift hits both sides of their ratio alike; 1: one window each, one after the other")
	fs.IntVar(&cfg.openPool, "open-pool", 256, "goroutines (and at most connections) of the open-loop sender of master-half")
	fs.DurationVar(&cfg.timeout, "timeout", 30*time.Second, "timeout of one HTTP request")
	fs.IntVar(&cfg.masterProcs, "master-procs", 0, "the master's GOMAXPROCS; 0: Go's default, one per CPU of this machine, as nginx's worker_processes auto (experiments: 1 as on the lab's 1-CPU master VM)")
	masterFlags := fs.String("master-flags", "", "extra flags for bin/master, space-separated (experiments: e.g. \"--policy p2c\")")
	slaveFlags := fs.String("slave-flags", "", "extra flags for both bin/slave, space-separated (experiments: e.g. \"--capacity 8\")")
	if err := benchkit.ParseFlags(fs, args); err != nil {
		return cfg, err
	}
	switch {
	case cfg.duration <= 0:
		return cfg, errors.New("--duration must be positive")
	case cfg.warmup < 0:
		return cfg, errors.New("--warmup must not be negative")
	case cfg.concurrency < 1 || cfg.batchConc < 1 || cfg.openPool < 1:
		return cfg, errors.New("--concurrency, --batch-concurrency and --open-pool must be at least 1")
	case cfg.batchSize < 1 || cfg.batchSize > 100000:
		return cfg, errors.New("--batch-size must be from 1 to 100000 (the master's default --max-batch)")
	case cfg.halfRate < 0:
		return cfg, errors.New("--half-rate must not be negative")
	case cfg.timeout <= 0:
		return cfg, errors.New("--timeout must be positive")
	case cfg.manySlaves < 3 || cfg.manySlaves > 500:
		return cfg, errors.New("--many-slaves must be from 3 to 500")
	case cfg.slices < 1 || cfg.slices > 100:
		return cfg, errors.New("--slices must be from 1 to 100")
	case cfg.masterProcs < 0 || cfg.masterProcs > 256:
		return cfg, errors.New("--master-procs must be from 0 (Go's default) to 256")
	}
	cfg.masterFlags, cfg.slaveFlags = strings.Fields(*masterFlags), strings.Fields(*slaveFlags)
	if cfg.nginxWorkers != "auto" {
		var n int
		if _, err := fmt.Sscanf(cfg.nginxWorkers, "%d", &n); err != nil || n < 1 || fmt.Sprint(n) != cfg.nginxWorkers {
			return cfg, fmt.Errorf("--nginx-workers must be auto or a positive number, got %q", cfg.nginxWorkers)
		}
	}
	var err error
	if cfg.only, err = benchkit.ParseOnly(*only, scenarioKeys, aliases); err != nil {
		return cfg, err
	}
	if (cfg.only["master-half"] || cfg.only["master-50"]) && !cfg.only["master"] && cfg.halfRate == 0 {
		return cfg, errors.New("--only: master-half and master-50 run at half of master's throughput: add master, or give --half-rate")
	}
	return cfg, nil
}

func main() { os.Exit(run(os.Args[1:])) }

var progress = benchkit.Progress("benchcalc")

func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return benchkit.FlagError("benchcalc", err)
	}
	ctx, stop := benchkit.NotifyContext()
	defer stop()

	rep := newReport(cfg)
	c, err := newCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcalc:", err)
		return benchkit.ExitFailed
	}
	defer c.Shutdown()

	c.MasterProcs = cfg.masterProcs
	if err := c.StartCalclab(ctx, cfg.binDir, cfg.masterFlags, cfg.slaveFlags, false); err != nil {
		if ctx.Err() != nil {
			return benchkit.ExitInterrupted
		}
		fmt.Fprintln(os.Stderr, "benchcalc: start:", err)
		return benchkit.ExitFailed
	}
	rep.capacity, rep.masterProcs = c.Capacity, c.MasterGOMAXPROCS
	failed := false
	if cfg.only["nginx"] || cfg.only["nginx-wrk"] {
		switch {
		case rep.nginx == "":
			fmt.Fprintln(os.Stderr, "nginx not installed: apt-get install nginx-light")
			rep.get("nginx").skipped = "nginx not installed: apt-get install nginx-light"
			rep.get("nginx-wrk").skipped = rep.get("nginx").skipped
		default:
			if err := c.startNginx(ctx, cfg.nginxBin, cfg.nginxWorkers); err != nil {
				if ctx.Err() != nil {
					return benchkit.ExitInterrupted
				}
				fmt.Fprintln(os.Stderr, "benchcalc: start nginx:", err)
				rep.get("nginx").skipped = "nginx failed to start (see stderr)"
				rep.get("nginx-wrk").skipped = rep.get("nginx").skipped
				failed = true
			} else {
				progress("nginx %s (worker_processes %s)", c.nginxURL, nginxWorkerCount(cfg.nginxWorkers))
			}
		}
	}

	if rep.wrk == "" && (cfg.only["master-wrk"] || cfg.only["nginx-wrk"]) {
		progress("%s not found: skipping the wrk rows (apt-get install wrk)", cfg.wrkBin)
		for _, k := range []string{"master-wrk", "nginx-wrk"} {
			if rep.get(k).skipped == "" {
				rep.get(k).skipped = "wrk not installed: apt-get install wrk"
			}
		}
	}

	conns := max(cfg.concurrency, cfg.batchConc, cfg.openPool) + 8
	client := benchkit.NewClient(conns, cfg.timeout)
	var seq atomic.Int64
	seq.Store(1)
	b := &bench{cfg: cfg, c: c, client: client, seq: &seq}
	measured := map[string]bool{} // rows already measured with their pair
	for _, s := range rep.rows {
		if !cfg.only[s.key] || s.skipped != "" || measured[s.key] {
			continue
		}
		if ctx.Err() != nil {
			s.skipped = "interrupted"
			continue
		}
		if s.key == "master-half" || s.key == "master-50" {
			rate, why := rep.halfRate()
			if why != "" {
				s.skipped = why
				continue
			}
			s.targetRate = rate
		}
		if s.key == "master-50" {
			progress("%s %s: starting slave-3 .. slave-%d", s.num, s.key, cfg.manySlaves)
			t := time.Now()
			if err := c.startMoreSlaves(ctx, cfg.binDir, cfg.manySlaves, cfg.slaveFlags); err != nil {
				c.stopMoreSlaves()
				if ctx.Err() != nil {
					s.skipped = "interrupted"
					continue
				}
				fmt.Fprintln(os.Stderr, "benchcalc: start more slaves:", err)
				s.skipped = "the extra slaves failed to start (see stderr)"
				failed = true
				continue
			}
			progress("%s %s: %d slaves registered and free in %s", s.num, s.key, cfg.manySlaves, time.Since(t).Round(time.Millisecond))
		}
		if mate := rep.pairOf(s); mate != nil {
			b.runPair(ctx, s, mate)
			measured[mate.key] = true
			failed = failed || mate.failed
		} else {
			b.run(ctx, s)
		}
		failed = failed || s.failed
		if died := c.Deaths(s.num + " " + s.title); len(died) > 0 {
			rep.problems = append(rep.problems, died...)
			failed = true
		}
		if s.key == "master-50" {
			c.stopMoreSlaves()
		}
		client.CloseIdleConnections()
		if ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond) // let the master flush and settle
		}
	}
	if ctx.Err() != nil {
		rep.interrupted = true
	}
	rep.logs = c.logSummary()
	rep.print(benchkit.Doc{W: os.Stdout, Markdown: cfg.markdown})
	return benchkit.ExitCode(rep.interrupted, failed || rep.anyErrors())
}

type bench struct {
	cfg    config
	c      *cluster
	client *http.Client
	seq    *atomic.Int64
}

// run runs one scenario and stores its stats in s.
func (b *bench) run(ctx context.Context, s *row) {
	cfg := b.cfg
	ph, use := b.cpuPhases()
	var st *runStats
	switch s.key {
	case "master-wrk", "nginx-wrk":
		b.runWrk(ctx, s)
		return
	case "master", "nginx":
		st = b.closedSlice(ctx, s, cfg.warmup, cfg.duration)
	case "direct":
		progress("%s %s: %d workers, warm-up %s + %s", s.num, s.key, cfg.concurrency, cfg.warmup, cfg.duration)
		st = runClosed(ctx, b.client, cfg.concurrency, cfg.warmup, cfg.duration, b.seq, 1,
			singleJob(b.c.SlaveURLs[0]+"/compute", "expression", false), ph)
	case "master-half", "master-50":
		progress("%s %s: open loop at %.0f requests/s, pool of %d, warm-up %s + %s", s.num, s.key, s.targetRate, cfg.openPool, cfg.warmup, cfg.duration)
		st = runOpen(ctx, b.client, s.targetRate, cfg.openPool, cfg.warmup, cfg.duration, b.seq,
			singleJob(b.c.MasterURL+"/submit-task", "payload", true), ph)
	case "batch":
		progress("%s %s: %d workers x %d expressions, warm-up %s + %s", s.num, s.key, cfg.batchConc, cfg.batchSize, cfg.warmup, cfg.duration)
		st = runClosed(ctx, b.client, cfg.batchConc, cfg.warmup, cfg.duration, b.seq, int64(cfg.batchSize),
			batchJob(b.c.MasterURL+"/submit-batch", cfg.batchSize), ph)
	}
	if ctx.Err() != nil {
		s.skipped = "interrupted"
		return
	}
	if st.cores == nil {
		st.cores = b.cores(use)
	}
	s.st = st
	progress("%s %s: %s %s/s, p50 %s, p99 %s, %d errors", s.num, s.key, benchkit.Commas(st.rate()), s.unit, benchkit.FmtDur(st.pct(50)), benchkit.FmtDur(st.pct(99)), st.bad)
	for _, e := range st.errs {
		progress("  error: %s", e)
	}
}

// cpuPhases are the hooks of a load run that measure the CPU used in its
// measurement window into use.
func (b *bench) cpuPhases() (ph phases, use *benchkit.CPUUse) {
	use = new(benchkit.CPUUse)
	var before benchkit.CPUSnap
	return phases{
		onStart: func() { before = b.c.SnapCPU() },
		onEnd:   func() { use.Add(before, b.c.SnapCPU()) },
	}, use
}

// cores is use by column of the CPU table.
func (b *bench) cores(use *benchkit.CPUUse) map[string]float64 {
	out := map[string]float64{}
	for _, col := range cpuCols {
		parts := []string{col}
		if col == moreSlavesCol {
			parts = b.c.moreSlaveNames()
		}
		for _, p := range parts {
			if v, ok := use.Cores(p); ok {
				out[col] += v
			}
		}
	}
	return out
}

// runWrk runs wrk against (2)'s or (3)'s URL: an unmeasured warm-up run,
// then the measured one, with the services' CPU accounted from just before
// wrk starts to just after it exits, and wrk's own from its rusage.
func (b *bench) runWrk(ctx context.Context, s *row) {
	cfg := b.cfg
	st, r := b.wrkSlice(ctx, s, cfg.warmup, cfg.duration)
	if st == nil {
		return
	}
	s.st, s.wrk = st, r
	progress("%s %s: %s %s/s (wrk: %s requests/s), p50 %s, p99 %s, %d errors", s.num, s.key, benchkit.Commas(st.rate()), s.unit,
		benchkit.Commas(r.reqPerSec), benchkit.FmtDur(st.pct(50)), benchkit.FmtDur(st.pct(99)), st.bad)
	for _, e := range st.errs {
		progress("  error: %s", e)
	}
}

// wrkSlice runs wrk for a warm-up (when warmup > 0) and a measured window
// of dur (whole seconds, at least 1) against s's service and returns the
// window's stats with the CPU used in it, or nil after setting s.skipped
// (and s.failed) when wrk failed or ctx ended.
func (b *bench) wrkSlice(ctx context.Context, s *row, warmup, dur time.Duration) (*runStats, *wrkResult) {
	cfg := b.cfg
	url, field := b.c.MasterURL+"/submit-task", "payload"
	if s.key == "nginx-wrk" {
		url, field = b.c.nginxURL+"/compute", "expression"
	}
	// wrk -d takes whole seconds.
	dur = max(time.Duration(math.Ceil(dur.Seconds()))*time.Second, time.Second)
	warm := time.Duration(math.Ceil(warmup.Seconds())) * time.Second
	progress("%s %s: wrk -t%d -c%d, warm-up %s + %s", s.num, s.key, wrkThreads, cfg.concurrency, warm, dur)
	once := func(name string, d time.Duration) (*wrkResult, time.Duration, error) {
		base := b.seq.Load()
		script, err := writeWrkScript(b.c.Dir, name, field, base)
		if err != nil {
			return nil, 0, err
		}
		out, cpu, err := execWrk(ctx, cfg.wrkBin, wrkArgs(cfg.concurrency, d, cfg.timeout, script, url))
		if err != nil {
			return nil, cpu, err
		}
		r, err := parseWrk(out)
		if err != nil {
			return nil, cpu, fmt.Errorf("%w; wrk printed:\n%s", err, out)
		}
		// Past every number wrk may have used (requests still in flight
		// when it stopped are not counted).
		b.seq.Add(r.requests + int64(2*cfg.concurrency+wrkThreads))
		return r, cpu, nil
	}
	fail := func(err error) {
		if ctx.Err() != nil {
			s.skipped = "interrupted"
			return
		}
		fmt.Fprintf(os.Stderr, "benchcalc: %s %s: %v\n", s.num, s.key, err)
		s.skipped = "wrk failed (see stderr)"
		s.failed = true
	}
	var warmBad int64
	if warmup > 0 {
		r, _, err := once(s.key+"-warmup.lua", warm)
		if err != nil {
			fail(err)
			return nil, nil
		}
		warmBad = r.non2xx + r.socketErrors()
	}
	before := b.c.SnapCPU()
	t0 := time.Now()
	r, cpu, err := once(s.key+".lua", dur)
	if err != nil {
		fail(err)
		return nil, nil
	}
	var use benchkit.CPUUse
	use.Add(before, b.c.SnapCPU())
	window := time.Since(t0)
	use.AddExternal("wrk", cpu)
	st := r.stats()
	st.warmBad = warmBad
	st.cores = b.cores(&use)
	// The window also holds wrk's start and exit, when the services idle:
	// give the cores over wrk's measured runtime, as for the other rows.
	if st.wall > 0 && window > st.wall {
		for k, v := range st.cores {
			st.cores[k] = v * window.Seconds() / st.wall.Seconds()
		}
	}
	return st, r
}
