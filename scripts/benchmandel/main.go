// Command benchmandel benchmarks calclab's Mandelbrot rendering on loopback,
// in one run:
//
//	(1) seed      GET {master}/mandelbrot/render with the defaults (the seed's
//	              500x500, 30 iterations, real axis -1.5..1.5), sequential
//	              requests for --duration after --warmup; target: median < 6 ms
//	(2) heavy     a 3840x2160, 1000-iteration boundary frame through the
//	              master and 2 slaves vs the same frame rendered and
//	              PNG-encoded in this process on all cores; target: ratio
//	              <= 1.10, the in-process render alone <= 0.35 s, and the
//	              master's PNG pixel-identical
//	(3) policies  frame (2) as Server-Sent Events through GET
//	              {master}/mandelbrot/stream with policy=least-conn and
//	              policy=round-robin: per-slave tiles, busy time, imbalance
//	(4) kernels   frame (2)'s region at 1/4 resolution rendered in this
//	              process on one core by every kernel (vector and scalar):
//	              iterations/s per core beside the peak (lanes x clock)
//
// It starts its own master and two slaves on free random loopback ports
// (never 5000, 6001 or 6002), stops them at exit (also on error or Ctrl-C)
// and removes its temp dir. `make bench-mandel` runs it after `make build`;
// --help lists the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
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
	scenarioKeys = []string{"seed", "heavy", "policies", "kernels"}
	aliases      = map[string]string{"1": "seed", "2": "heavy", "3": "policies", "policy": "policies", "4": "kernels", "kernel": "kernels"}
)

const usageHead = `benchmandel: calclab Mandelbrot benchmark (seed view, heavy frame vs in-process, balancing policies).

Starts its own master and 2 slaves on free loopback ports, runs each scenario, and
prints tables to stdout (progress goes to stderr).

Usage: go run ./scripts/benchmandel [flags]     (make bench-mandel)

Flags:
`

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := benchkit.NewFlagSet("benchmandel", usageHead, stderr)
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "measured duration of the seed scenario (sequential requests)")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up of the seed scenario")
	fs.IntVar(&cfg.heavyRuns, "heavy-runs", 3, "measured renders of the heavy frame, per path (master, in-process) and per policy; (2) adds one unmeasured warm-up render per path")
	fs.StringVar(&cfg.binDir, "bin-dir", "./bin", "directory holding the master and slave binaries (make build)")
	only := fs.String("only", "", "comma list of scenarios to run: seed,heavy,policies,kernels (or 1,2,3,4); empty: all")
	fs.BoolVar(&cfg.markdown, "markdown", false, "print the results as Markdown tables (for docs/benchmarks.md)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "timeout of one HTTP request (a heavy render or stream)")
	fs.IntVar(&cfg.tile, "tile", 0, "tile side in pixels passed to the master for (2) and (3) (16..1024); 0: the master's choice")
	masterFlags := fs.String("master-flags", "", "extra flags for bin/master, space-separated (experiments)")
	slaveFlags := fs.String("slave-flags", "", "extra flags for both bin/slave, space-separated (experiments: e.g. \"--capacity 1\")")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "after the scenarios, save CPU profiles of the master and both slaves while they render the seed view and then the heavy frame back to back (go tool pprof -top bin/master DIR/heavy-master.pprof); empty: off")
	fs.IntVar(&cfg.profileSeconds, "profile-seconds", 10, "length of each --profile-dir profile, in seconds")
	fs.StringVar(&cfg.saveDir, "save-dir", "", "save the master's PNGs here (seed.png, heavy.png, heavy-preview.png at 1/4 size) to look at; empty: off")
	if err := benchkit.ParseFlags(fs, args); err != nil {
		return cfg, err
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
	var err error
	cfg.only, err = benchkit.ParseOnly(*only, scenarioKeys, aliases)
	return cfg, err
}

func main() { os.Exit(run(os.Args[1:])) }

var progress = benchkit.Progress("benchmandel")

func run(args []string) int {
	cfg, err := parseFlags(args, os.Stderr)
	if err != nil {
		return benchkit.FlagError("benchmandel", err)
	}
	for _, d := range []string{cfg.profileDir, cfg.saveDir} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				fmt.Fprintln(os.Stderr, "benchmandel:", err)
				return benchkit.ExitUsage
			}
		}
	}
	ctx, stop := benchkit.NotifyContext()
	defer stop()

	rep := newReport(cfg)
	c, err := benchkit.NewCluster("benchmandel")
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmandel:", err)
		return benchkit.ExitFailed
	}
	defer c.Shutdown()

	masterFlags := append([]string{
		"--mandel-max-pixels", fmt.Sprint(max(heavyFrame.Width*heavyFrame.Height, 4096*4096)),
		"--tile-timeout", tileTimeout.String(),
	}, cfg.masterFlags...)
	rep.masterFlags = masterFlags
	if err := c.StartCalclab(ctx, cfg.binDir, masterFlags, cfg.slaveFlags, cfg.profileDir != ""); err != nil {
		if ctx.Err() != nil {
			return benchkit.ExitInterrupted
		}
		fmt.Fprintln(os.Stderr, "benchmandel: start:", err)
		return benchkit.ExitFailed
	}
	rep.capacity = c.Capacity

	b := newBench(cfg, c)
	steps := []struct {
		key string
		fn  func(context.Context)
	}{
		{"seed", func(ctx context.Context) { rep.seed = b.runSeed(ctx) }},
		{"heavy", func(ctx context.Context) { rep.heavy = b.runHeavy(ctx) }},
		{"policies", func(ctx context.Context) { rep.policies = b.runPolicies(ctx) }},
		{"kernels", func(ctx context.Context) { rep.kernels = b.runKernels(ctx) }},
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
		if died := c.Deaths(s.key); len(died) > 0 {
			rep.problems = append(rep.problems, died...)
			failed = true
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
	rep.logs = c.LogSummary()
	rep.print(benchkit.Doc{W: os.Stdout, Markdown: cfg.markdown})
	return benchkit.ExitCode(rep.interrupted, failed || rep.anyErrors())
}
