// Package envflag gives every command-line flag an environment-variable
// twin: --data-dir is also CALCLAB_DATA_DIR. A flag given on the command
// line wins over its variable; --help lists both.
package envflag

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/calclab/calclab/services/httpserve"
)

// EnvName is the variable that sets flag name: CALCLAB_ plus the name in
// upper case with dashes as underscores.
func EnvName(name string) string {
	return "CALCLAB_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse parses args into fs, then sets every flag that was not given from
// its environment variable (looked up with getenv). fs's usage lists each
// flag with its variable under the given summary.
func Parse(fs *flag.FlagSet, summary string, args []string, getenv func(string) string) error {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "%s\n\nFlags (each also read from the environment variable shown):\n", strings.TrimSpace(summary))
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" {
				def = fmt.Sprintf(" (default %q)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s  [$%s]%s\n      %s\n", f.Name, EnvName(f.Name), def, f.Usage)
		})
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || given[f.Name] {
			return
		}
		if v := getenv(EnvName(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("$%s=%q: %w", EnvName(f.Name), v, e)
			}
		}
	})
	return err
}

// Logger returns a text slog logger on w at the named level (debug, info,
// warn, error).
func Logger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(httpserve.ContextHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(httpserve.ContextHandler(slog.NewJSONHandler(w, opts))), nil
	default:
		return nil, fmt.Errorf("log format %q: use text or json", format)
	}
}

// Stderr is where commands log.
var Stderr io.Writer = os.Stderr
