// Command slave runs a calclab worker that evaluates tasks for the master.
// Every flag has an environment twin (see --help).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "slave:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cfg := slave.Defaults()
	fs := flag.NewFlagSet("slave", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address to serve HTTP on")
	fs.StringVar(&cfg.Master, "master", cfg.Master, "master base URL; empty: run stand-alone")
	fs.StringVar(&cfg.ID, "id", "", "slave id; empty: the master assigns slave-xxxxxxxx")
	fs.StringVar(&cfg.Advertise, "advertise", "", "URL the master calls this slave at (default http://<listen>)")
	fs.StringVar(&cfg.Token, "token", "", "shared token to present to the master")
	fs.IntVar(&cfg.Capacity, "capacity", cfg.Capacity, "tasks evaluated at once, reported to the master (default: number of CPUs)")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	format := fs.String("log-format", "text", "log format: text or json")
	pprofAddr := fs.String("pprof-listen", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; empty: off")
	if err := envflag.Parse(fs, summary, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	if cfg.Capacity < 1 || cfg.Capacity > 4096 {
		return fmt.Errorf("--capacity must be from 1 to 4096, got %d", cfg.Capacity)
	}
	var err error
	if cfg.Logger, err = envflag.Logger(os.Stderr, *level, *format); err != nil {
		return err
	}
	envflag.ServePprof(*pprofAddr, cfg.Logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return slave.Run(ctx, cfg)
}
