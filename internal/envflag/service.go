package envflag

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
)

// Exit ends a command's main: status 0 for no error or --help, else the
// error on stderr after the command's name and status 1.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(1)
}

// Service holds the flags both services share: logging and the profiler.
type Service struct {
	level, format, pprof *string
	// Getenv looks up the flags' environment twins; nil is os.Getenv.
	Getenv func(string) string
}

// ServiceFlags defines --log-level, --log-format and --pprof-listen on fs.
func ServiceFlags(fs *flag.FlagSet) *Service {
	return &Service{
		level:  fs.String("log-level", "info", "log level: debug, info, warn, error"),
		format: fs.String("log-format", "text", "log format: text or json"),
		pprof:  fs.String("pprof-listen", "", "serve Go's profiler (net/http/pprof) on this address, e.g. 127.0.0.1:6060; empty: off"),
	}
}

// Parse is the package's Parse plus a check that no positional arguments
// were given.
func (s *Service) Parse(fs *flag.FlagSet, summary string, args []string) error {
	getenv := s.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := Parse(fs, summary, args, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	return nil
}

// Start builds the logger from the flags and starts the profiler when
// --pprof-listen is set.
func (s *Service) Start() (*slog.Logger, error) {
	logger, err := Logger(os.Stderr, *s.level, *s.format)
	if err != nil {
		return nil, err
	}
	ServePprof(*s.pprof, logger)
	return logger, nil
}
