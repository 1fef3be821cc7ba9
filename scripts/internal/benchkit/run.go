package benchkit

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
)

// The benchmarks' exit codes.
const (
	ExitOK          = 0   // every scenario ran without errors
	ExitFailed      = 1   // a request, check or child process failed
	ExitUsage       = 2   // bad flags
	ExitInterrupted = 130 // stopped by Ctrl-C or SIGTERM
)

// NewFlagSet returns the flag set of program prog: on -help it prints
// usage and then the flags' defaults to stderr, where parse errors go too.
func NewFlagSet(prog, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// ParseFlags parses args with fs and refuses arguments after the flags.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	return nil
}

// FlagError is the exit code for an error from parsing the flags:
// ExitOK for -help (the usage has been printed), else ExitUsage after
// printing err.
func FlagError(prog string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	fmt.Fprintln(os.Stderr, prog+":", err)
	return ExitUsage
}

// Progress returns a printf-like function that writes a progress line to
// stderr, led by "prog: " (stdout is for the report).
func Progress(prog string) func(format string, args ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, prog+": "+format+"\n", args...)
	}
}

// ExitCode is the exit code of a finished run: ExitInterrupted when it
// was interrupted, else ExitFailed when anything failed, else ExitOK.
func ExitCode(interrupted, failed bool) int {
	switch {
	case interrupted:
		return ExitInterrupted
	case failed:
		return ExitFailed
	}
	return ExitOK
}

// NotifyContext returns a context cancelled by the first Ctrl-C or
// SIGTERM, so the program can stop its children in order and still print
// its report; a second signal kills the program at once (the children die
// with it: Pdeathsig).
func NotifyContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// ParseOnly parses an --only flag: a comma list of scenario keys, or of
// aliases for them, in any case. The empty list selects every key.
func ParseOnly(list string, keys []string, aliases map[string]string) (map[string]bool, error) {
	only := map[string]bool{}
	for _, f := range strings.Split(list, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if a, ok := aliases[f]; ok {
			f = a
		}
		valid := false
		for _, k := range keys {
			valid = valid || k == f
		}
		if !valid {
			return nil, fmt.Errorf("--only: unknown scenario %q; use %s", f, strings.Join(keys, ","))
		}
		only[f] = true
	}
	if len(only) == 0 {
		for _, k := range keys {
			only[k] = true
		}
	}
	return only, nil
}
