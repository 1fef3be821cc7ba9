// Command master runs calclab's master: the task API, the slave registry
// and the balancer. Every flag has an environment twin (see --help).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/calclab/calclab/internal/envflag"
	"github.com/calclab/calclab/services/balancer"
	"github.com/calclab/calclab/services/master"
)

const summary = `master: calclab's master. Accepts calculator tasks (POST /submit-task, POST /submit-batch),
keeps the registry of slaves (POST /register-slave, GET /slaves) and balances tasks across them.

Usage: master [flags]`

func main() { envflag.Exit("master", run(os.Args[1:])) }

func run(args []string) error {
	cfg, svc, err := parse(args, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Logger, err = svc.Start(); err != nil {
		return err
	}
	// The task store keeps up to --max-tasks tasks on the heap, which the
	// collector scans on every cycle: collect less often than Go's default
	// (GOGC=100) unless the operator chose. Memory stays small (tens of MB).
	envflag.DefaultGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return master.Run(ctx, cfg)
}

// parse reads the master's configuration from args and the environment
// (looked up with getenv) and checks it.
func parse(args []string, getenv func(string) string) (master.Config, *envflag.Service, error) {
	cfg := master.Defaults()
	fs := flag.NewFlagSet("master", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve HTTP on")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory of the task store")
	fs.StringVar(&cfg.Policy, "policy", cfg.Policy, fmt.Sprintf("balancing policy: %v", balancer.Names()))
	fs.StringVar(&cfg.Token, "token", "", "shared token slaves must present (Bearer) to register; empty: no token")
	cidrs := fs.String("allow-cidr", "127.0.0.0/8,::1/128", "comma-separated networks slave webhooks may be in")
	fs.IntVar(&cfg.MaxQueue, "max-queue", cfg.MaxQueue, "tasks that may wait for a free slave before 503")
	fs.DurationVar(&cfg.TaskTimeout, "task-timeout", cfg.TaskTimeout, "timeout of one try of a task on one slave")
	fs.BoolVar(&cfg.TaskStream, "task-stream", cfg.TaskStream, "send expressions to each slave on one persistent pipelined connection; false: one HTTP request per task or group")
	fs.BoolVar(&cfg.FastLane, "fast-lane", cfg.FastLane, "serve plain HTTP/1.1 POST /submit-task requests without net/http (same replies, less CPU); false: every request through net/http and Echo")
	fs.DurationVar(&cfg.TaskDeadline, "task-deadline", cfg.TaskDeadline, "time from acceptance after which a task fails")
	fs.DurationVar(&cfg.HealthInterval, "health-interval", cfg.HealthInterval, "interval of active health checks")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", cfg.HeartbeatInterval, "heartbeat interval told to slaves")
	fs.IntVar(&cfg.FailThreshold, "fail-threshold", cfg.FailThreshold, "failures in a row that eject a slave")
	fs.IntVar(&cfg.MaxBatch, "max-batch", cfg.MaxBatch, "max expressions in one /submit-batch")
	fs.IntVar(&cfg.MaxTasks, "max-tasks", cfg.MaxTasks, "tasks kept in the store (oldest finished ones are dropped)")
	fs.IntVar(&cfg.MaxOperands, "max-operands", cfg.MaxOperands, "max operands of one operation task (beyond: 413)")
	fs.Int64Var(&cfg.MaxStoreBytes, "max-store-bytes", cfg.MaxStoreBytes, "task store size kept (oldest finished tasks are dropped past it)")
	fs.DurationVar(&cfg.FlushEvery, "flush-every", cfg.FlushEvery, "group-commit interval of the task store (what a crash can lose)")
	fs.IntVar(&cfg.MandelMaxPixels, "mandel-max-pixels", cfg.MandelMaxPixels, "max pixels (width*height) of one Mandelbrot render")
	fs.IntVar(&cfg.MandelMaxIter, "mandel-max-iter", cfg.MandelMaxIter, "max iterations of one Mandelbrot render")
	fs.Int64Var(&cfg.MandelMaxWork, "mandel-max-work", cfg.MandelMaxWork, "max work of one Mandelbrot render: width*height*max_iter (beyond: 413)")
	fs.Int64Var(&cfg.MandelMaxWorkInFlight, "mandel-max-work-in-flight", cfg.MandelMaxWorkInFlight, "max work of all Mandelbrot renders in flight (beyond: 503, retry)")
	fs.DurationVar(&cfg.TileTimeout, "tile-timeout", cfg.TileTimeout, "timeout of one try of one Mandelbrot tile on one slave")
	svc := envflag.ServiceFlags(fs)
	svc.Getenv = getenv
	if err := svc.Parse(fs, summary, args); err != nil {
		return cfg, nil, err
	}
	var err error
	if cfg.AllowCIDRs, err = master.ParseCIDRs(*cidrs); err != nil {
		return cfg, nil, envflag.Usagef("--allow-cidr: %w", err)
	}
	if err := cfg.Check(); err != nil {
		return cfg, nil, &envflag.UsageError{Err: err}
	}
	return cfg, svc, nil
}
