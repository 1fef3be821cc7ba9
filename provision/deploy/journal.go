package deploy

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/calclab/calclab/provision/sshkeys"
)

// Journal writes the journal of role's calclab unit on the node at t to w
// (journalctl over SSH, through sudo), following it when follow is set
// until ctx ends. It is what a VM driver's Logs is.
func Journal(ctx context.Context, t sshkeys.Target, role string, follow bool, w io.Writer) error {
	u, err := UnitFor(role)
	if err != nil {
		return err
	}
	c, err := t.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return fmt.Errorf("journal of %s: %w", t.Node, err)
	}
	defer s.Close()
	// stdout and stderr are copied by two goroutines: one lock for w.
	sw := &syncWriter{w: w}
	s.Stdout, s.Stderr = sw, sw
	cmd := "sudo -n journalctl --no-pager -o short-iso -u " + u.Name
	if follow {
		cmd += " -f"
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if err := s.Run(cmd); err != nil && ctx.Err() == nil {
		return fmt.Errorf("journal of %s (%s): %w", t.Node, u.Name, err)
	}
	return nil
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
