package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
	"github.com/calclab/calclab/services/api"
)

// startMoreSlaves starts slave-3 .. slave-<total> on free loopback ports,
// registered with the cluster's master with the same flags as slave-1 and
// slave-2, and waits until the master lists all of them as free. They are
// Extra processes (their CPU is accounted, a death is reported, Close
// stops them); stopMoreSlaves stops them earlier.
func (c *cluster) startMoreSlaves(ctx context.Context, binDir string, total int, slaveFlags []string) error {
	slaveBin := filepath.Join(binDir, "slave")
	for i := 3; i <= total; i++ {
		id := fmt.Sprintf("slave-%d", i)
		var url string
		p, _, err := c.StartService(ctx, id, func(port int) (*benchkit.Proc, error) {
			url = fmt.Sprintf("http://127.0.0.1:%d", port)
			args := append([]string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--master", c.MasterURL, "--id", id, "--log-level", "warn"}, slaveFlags...)
			return c.StartProc(id, filepath.Join(c.Dir, id+".log"), slaveBin, args...)
		}, func(p *benchkit.Proc, port int) error {
			return benchkit.WaitFor(ctx, p, 15*time.Second, id, benchkit.Healthy(url))
		})
		if err != nil {
			return err
		}
		c.more = append(c.more, p)
		c.Extra = append(c.Extra, p)
	}
	return benchkit.WaitFor(ctx, c.Master, 30*time.Second, fmt.Sprintf("GET /slaves listing %d free slaves", total), func() error {
		return c.allFree(total)
	})
}

// allFree checks that the master lists n free slaves.
func (c *cluster) allFree(n int) error {
	data, err := benchkit.GetOK(c.MasterURL + "/slaves")
	if err != nil {
		return err
	}
	var list []api.SlaveInfo
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("decode /slaves: %w", err)
	}
	free := 0
	for _, s := range list {
		if s.Status == api.SlaveFree {
			free++
		}
	}
	if free != n {
		return fmt.Errorf("%d of %d slaves free (%d listed)", free, n, len(list))
	}
	return nil
}

// moreSlaveNames are the process names of the slaves startMoreSlaves
// started.
func (c *cluster) moreSlaveNames() []string {
	var names []string
	for _, p := range c.more {
		names = append(names, p.Name())
	}
	return names
}

// stopMoreSlaves stops the slaves startMoreSlaves started (SIGTERM: they
// deregister) and drops them from Extra.
func (c *cluster) stopMoreSlaves() {
	done := make(chan struct{}, len(c.more))
	for _, p := range c.more {
		go func() {
			p.Stop(syscall.SIGTERM, 10*time.Second)
			done <- struct{}{}
		}()
	}
	for range c.more {
		<-done
	}
	c.Extra = slices.DeleteFunc(c.Extra, func(p *benchkit.Proc) bool { return slices.Contains(c.more, p) })
	c.more = nil
}
