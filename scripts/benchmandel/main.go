// Command benchmandel benchmarks calclab's Mandelbrot rendering on loopback,
// in one run:
//
//	(1) seed      GET {master}/mandelbrot/render with the defaults (the seed's
//	              500x500, 30 iterations, real axis -1.5..1.5), sequential
//	              requests for --duration after --warmup; target: median < 15 ms
//	(2) heavy     a 3840x2160, 1000-iteration boundary frame through the
//	              master and 2 slaves vs the same frame rendered and
//	              PNG-encoded in this process on all cores; target: ratio
//	              <= 1.15, and the master's PNG pixel-identical
//	(3) policies  frame (2) as Server-Sent Events through GET
//	              {master}/mandelbrot/stream with policy=least-conn and
//	              policy=round-robin: per-slave tiles, busy time, imbalance
//
// It starts its own master and two slaves on free random loopback ports
// (never 5000, 6001 or 6002), stops them at exit (also on error or Ctrl-C)
// and removes its temp dir. `make bench-mandel` runs it after `make build`;
// --help lists the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

type config struct {
	duration       time.Duration
	warmup         time.Duration
	heavyRuns      int
	binDir         string
	only           map[string]bool
	markdown       bool
	timeout        time.Duration
	tile           int
	masterFlags    []string
	slaveFlags     []string
	profileDir     string
	profileSeconds int
	saveDir        string
}

// scenario keys in run order, with the aliases --only accepts.
var (
	scenarioKeys = []string{"seed", "heavy", "policies"}
	aliases      = map[string]string{"1": "seed", "2": "heavy", "3": "policies", "policy": "policies"}
)

const usageHead = `benchmandel: calclab Mandelbrot benchmark (seed view, heavy frame vs in-process, balancing policies).

Starts its own master and 2 slaves on free loopback ports, runs each scenario, and
prints tables to stdout (progress goes to stderr).

Usage: go run ./scripts/benchmandel [flags]     (make bench-mandel)

Flags:
`

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("benchmandel", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured duration of the seed scenario (sequential requests)")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up of the seed scenario")
	fs.IntVar(&cfg.heavyRuns, "heavy-runs", 3, "measured renders of the heavy frame, per path (master, in-process) and per policy; (2) adds one unmeasured warm-up render per path")
	fs.StringVar(&cfg.binDir, "bin-dir", "./bin", "directory holding the master and slave binaries (make build)")
	only := fs.String("only", "", "comma list of scenarios to run: seed,heavy,policies (or 1,2,3); empty: all")
	fs.BoolVar(&cfg.markdown, "markdown", false, "print the results as Markdown tables (for docs/benchmarks.md)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "timeout of one HTTP request (a heavy render or stream)")
	fs.IntVar(&cfg.tile, "tile", 0, "tile side in pixels passed to the master for (2) and (3) (16..1024); 0: the master's choice")
	masterFlags := fs.String("master-flags", "", "extra flags for bin/master, space-separated (experiments)")
	slaveFlags := fs.String("slave-flags", "", "extra flags for both bin/slave, space-separated (experiments: e.g. \"--capacity 1\")")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "after the scenarios, save CPU profiles of the master and both slaves while they render the seed view and then the heavy frame back to back (go tool pprof -top bin/master DIR/heavy-master.pprof); empty: off")
	fs.IntVar(&cfg.profileSeconds, "profile-seconds", 10, "length of each --profile-dir profile, in seconds")
	fs.StringVar(&cfg.saveDir, "save-dir", "", "save the master's PNGs here (seed.png, heavy.png, heavy-preview.png at 1/4 size) to look at; empty: off")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	switch {
	case cfg.duration <= 0:
		return cfg, errors.New("--duration must be positive")
	case cfg.warmup < 0:
		return cfg, errors.New("--warmup must not be negative")
	case cfg.heavyRuns < 1:
		return cfg, errors.New("--heavy-runs must be at least 1")
	case cfg.timeout <= 0:
		return cfg, errors.New("--timeout must be positive")
	case cfg.tile != 0 && (cfg.tile < 16 || cfg.tile > 1024):
		return cfg, errors.New("--tile must be 0 or from 16 to 1024")
	case cfg.profileSeconds < 1:
		return cfg, errors.New("--profile-seconds must be at least 1")
	}
	cfg.masterFlags, cfg.slaveFlags = strings.Fields(*masterFlags), strings.Fields(*slaveFlags)
	cfg.only = map[string]bool{}
	for _, f := range strings.Split(*only, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if a, ok := aliases[f]; ok {
			f = a
		}
		valid := false
		for _, k := range scenarioKeys {
			valid = valid || k == f
		}
		if !valid {
			return cfg, fmt.Errorf("--only: unknown scenario %q; use %s", f, strings.Join(scenarioKeys, ","))
		}
		cfg.only[f] = true
	}
	if len(cfg.only) == 0 {
		for _, k := range scenarioKeys {
			cfg.only[k] = true
		}
	}
	return cfg, nil
}

func main() { os.Exit(run(os.Args[1:])) }

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchmandel: "+format+"\n", args...)
}

func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmandel:", err)
		return 2
	}
	for _, d := range []string{cfg.profileDir, cfg.saveDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "benchmandel:", err)
				return 2
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills us at once (the children die with us: Pdeathsig)
	}()

	rep := newReport(cfg)
	c, err := newCluster()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmandel:", err)
		return 1
	}
	defer func() {
		t := time.Now()
		progress("stopping everything it started")
		c.Close()
		progress("stopped in %s; removed %s", time.Since(t).Round(time.Millisecond), c.dir)
	}()

	masterFlags := append([]string{
		"--mandel-max-pixels", fmt.Sprint(max(heavyFrame.Width*heavyFrame.Height, 4096*4096)),
		"--tile-timeout", tileTimeout.String(),
	}, cfg.masterFlags...)
	rep.masterFlags = masterFlags
	progress("starting a master and 2 slaves on free loopback ports (temp dir %s)", c.dir)
	if err := c.startCalclab(ctx, cfg.binDir, masterFlags, cfg.slaveFlags, cfg.profileDir != ""); err != nil {
		if ctx.Err() != nil {
			return 130
		}
		fmt.Fprintln(os.Stderr, "benchmandel: start:", err)
		return 1
	}
	rep.capacity = c.capacity
	progress("master %s, slave-1 %s, slave-2 %s", c.masterURL, c.slaveURLs[0], c.slaveURLs[1])

	b := newBench(cfg, c)
	steps := []struct {
		key string
		fn  func(context.Context)
	}{
		{"seed", func(ctx context.Context) { rep.seed = b.runSeed(ctx) }},
		{"heavy", func(ctx context.Context) { rep.heavy = b.runHeavy(ctx) }},
		{"policies", func(ctx context.Context) { rep.policies = b.runPolicies(ctx) }},
	}
	failed := false
	for _, s := range steps {
		if !cfg.only[s.key] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		s.fn(ctx)
		for _, p := range c.procs() {
			if p.exited() && !rep.died[p.name] {
				rep.died[p.name] = true
				rep.problems = append(rep.problems, fmt.Sprintf("%s died during %s: %s", p.name, s.key, p.describeExit()))
				failed = true
			}
		}
		b.client.CloseIdleConnections()
		if ctx.Err() == nil {
			time.Sleep(300 * time.Millisecond) // let the services settle
		}
	}
	if cfg.profileDir != "" && ctx.Err() == nil && !failed {
		rep.profiles = b.profile(ctx)
	}
	if ctx.Err() != nil {
		rep.interrupted = true
	}
	rep.logs = c.logSummary()
	if cfg.markdown {
		rep.printMarkdown(os.Stdout)
	} else {
		rep.printText(os.Stdout)
	}
	switch {
	case rep.interrupted:
		return 130
	case failed || rep.anyErrors():
		return 1
	}
	return 0
}
