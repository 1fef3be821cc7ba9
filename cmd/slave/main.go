// Command slave runs a calclab worker that evaluates tasks for the master.
// Every flag has an environment twin (see --help).
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/calclab/calclab/internal/envflag"
	"github.com/calclab/calclab/services/slave"
)

const summary = `slave: a calclab worker. Evaluates expressions (POST /compute, POST /compute/batch),
registers with the master and heartbeats; on SIGTERM it stops taking work, finishes what it has
and deregisters.

Usage: slave [flags]`

func main() { envflag.Exit("slave", run(os.Args[1:])) }

func run(args []string) error {
	cfg, svc, err := parse(args, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.Logger, err = svc.Start(); err != nil {
		return err
	}
	// Every expression allocates; the live heap is tiny. At Go's default
	// (GOGC=100) a batch spent a fifth of the slave's CPU collecting and
	// returning memory to the OS (bench-calc (4): 0.45-0.47 -> 0.39-0.40
	// cores per slave at a higher rate with 400).
	envflag.DefaultGCPercent(400)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return slave.Run(ctx, cfg)
}

// parse reads the slave's configuration from args and the environment
// (looked up with getenv) and checks it.
func parse(args []string, getenv func(string) string) (slave.Config, *envflag.Service, error) {
	cfg := slave.Defaults()
	fs := flag.NewFlagSet("slave", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve HTTP on")
	fs.StringVar(&cfg.Master, "master", cfg.Master, "master base URL; empty: run stand-alone")
	fs.StringVar(&cfg.ID, "id", "", "slave id; empty: the master assigns slave-xxxxxxxx")
	fs.StringVar(&cfg.Advertise, "advertise", "", "URL the master calls this slave at (default http://<listen>)")
	fs.StringVar(&cfg.Token, "token", "", "shared token to present to the master")
	fs.IntVar(&cfg.Capacity, "capacity", cfg.Capacity, "tasks evaluated at once, reported to the master (default: number of CPUs)")
	svc := envflag.ServiceFlags(fs)
	svc.Getenv = getenv
	if err := svc.Parse(fs, summary, args); err != nil {
		return cfg, nil, err
	}
	if err := cfg.Check(); err != nil {
		return cfg, nil, &envflag.UsageError{Err: err}
	}
	return cfg, svc, nil
}
