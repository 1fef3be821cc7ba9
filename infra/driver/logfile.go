package driver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/calclab/calclab/infra/spec"
)

// ErrNoLog is returned by CopyLog for a log file that does not exist yet.
var ErrNoLog = errors.New("no log yet (is the lab up? run lab up)")

// CopyLog writes the log file at path to w and, when follow is set, keeps
// writing what is appended until ctx ends. node must be in lab; what names
// the log in errors ("log", "console log").
func CopyLog(ctx context.Context, lab *spec.Lab, node, path, what string, follow bool, w io.Writer) error {
	if _, ok := lab.Node(node); !ok {
		return fmt.Errorf("no node %q in %s (nodes: %s)", node, lab.File, strings.Join(lab.NodeNames(), ", "))
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("node %s has no %s: %w", node, what, ErrNoLog)
		}
		return fmt.Errorf("open %s: %w", what, err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
