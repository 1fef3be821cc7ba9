package envflag

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/calclab/calclab/services/httpserve"
)

// Exit ends a command's main: status 0 for no error or --help, else the
// error on stderr after the command's name and status 2 for a usage error
// (a flag or setting the command refuses), 1 for any other.
func Exit(name string, err error) {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	os.Exit(ExitCode(err))
}

// ExitCode is the status Exit ends with for err: 0, 2 for a UsageError, 1
// otherwise.
func ExitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	}
	return 1
}

// UsageError is a flag or setting a command refuses before it starts; it
// ends the command with status 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with the formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
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
	// A bad flag is one line (Exit prints it), not the flag package's
	// message followed by the whole usage; --help still shows the usage.
	out := fs.Output()
	fs.SetOutput(io.Discard)
	err := Parse(fs, summary, args, getenv)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return &UsageError{Err: fmt.Errorf("%w (see --help)", err)}
	case fs.NArg() > 0:
		return Usagef("unexpected arguments %q (see --help)", fs.Args())
	}
	if _, err := Logger(io.Discard, *s.level, *s.format); err != nil {
		return &UsageError{Err: err}
	}
	if *s.pprof != "" {
		if err := httpserve.CheckListen(*s.pprof); err != nil {
			return Usagef("--pprof-listen %w", err)
		}
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

// DefaultGCPercent sets the collector's target to percent unless the
// operator chose one with GOGC. Both services allocate at a high rate
// around a small live heap, which Go's default (100) collects, and returns
// to the OS, far more often than it needs to.
func DefaultGCPercent(percent int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
}
