package master

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
)

// maxCoalesce bounds the tasks sent to a slave in one call.
const maxCoalesce = 128

// coalescer sends single expression tasks that wait at the same time to a
// slave in one POST /compute/batch call instead of one call each: under
// load, the master's second HTTP hop is paid once per group. A task that
// arrives while a sender is idle goes alone, at once. Each group is one job
// on the dispatcher (balanced, queued, retried on another slave); each task
// still records its final status exactly once, in its own runner.
type coalescer struct {
	s       *Server
	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	senders int
	stopped bool
}

// pending is a task waiting in the coalescer.
type pending struct {
	id       string
	expr     string
	reqID    string
	deadline time.Time
	done     chan outcome
}

// outcome is what a task's runner learns from its group's call.
type outcome struct {
	result  float64
	evalErr string // the slave's verdict on this expression
	err     error  // the group could not be run (deadline, shutdown)
	slave   string
}

func newCoalescer(s *Server, senders int) *coalescer {
	return &coalescer{s: s, wake: make(chan struct{}, 1), senders: senders}
}

// start runs the senders until ctx ends; tasks queued then get ctx's error.
func (c *coalescer) start(ctx context.Context) {
	for range c.senders {
		go c.sender(ctx)
	}
}

// depth is the number of tasks waiting to be grouped.
func (c *coalescer) depth() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// submit queues a task and waits for its group's outcome.
func (c *coalescer) submit(p *pending) outcome {
	p.done = make(chan outcome, 1)
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return outcome{err: context.Canceled}
	}
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return <-p.done
}

func (c *coalescer) take() []*pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.queue), maxCoalesce)
	if n == 0 {
		return nil
	}
	group := make([]*pending, n)
	copy(group, c.queue[:n])
	clear(c.queue[:n])
	c.queue = c.queue[n:]
	if len(c.queue) > 0 {
		// Others wait: let another sender take them.
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	return group
}

func (c *coalescer) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			c.drain(ctx.Err())
			return
		case <-c.wake:
		}
		for {
			group := c.take()
			if group == nil {
				break
			}
			c.send(ctx, group)
		}
	}
}

// drain fails every queued task with err (the master is stopping).
func (c *coalescer) drain(err error) {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.stopped = true
	c.mu.Unlock()
	for _, p := range q {
		p.done <- outcome{err: err}
	}
}

// send runs one group as one job on the dispatcher.
func (c *coalescer) send(ctx context.Context, group []*pending) {
	s := c.s
	deadline := group[0].deadline
	exprs := make([]string, len(group))
	for i, p := range group {
		exprs[i] = p.expr
		if p.deadline.Before(deadline) {
			deadline = p.deadline
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	body, err := json.Marshal(api.ComputeBatchRequest{Expressions: exprs})
	if err != nil {
		for _, p := range group {
			p.done <- outcome{err: err}
		}
		return
	}
	var results []api.BatchItem
	tg, _, err := s.pool.Do(ctx, "", func(ctx context.Context, tg dispatch.Target, _ int) error {
		for _, p := range group {
			_, _ = s.store.Update(p.id, func(t *api.Task) {
				t.Status, t.Slave, t.Attempts = api.StatusAssigned, tg.ID, t.Attempts+1
			})
		}
		var resp api.ComputeBatchResponse
		err := s.post(ctx, tg.URL+"/compute/batch", body, group[0].reqID, &resp)
		if err == nil && len(resp.Results) != len(group) {
			err = fmt.Errorf("slave %s returned %d results for %d expressions", tg.ID, len(resp.Results), len(group))
		}
		if err != nil {
			for _, p := range group {
				_, _ = s.store.Update(p.id, func(t *api.Task) { t.Status = api.StatusQueued })
			}
			return err
		}
		results = resp.Results
		return nil
	})
	for i, p := range group {
		switch {
		case err != nil:
			p.done <- outcome{err: err, slave: tg.ID}
		case results[i].Result == nil:
			msg := results[i].Error
			if msg == "" {
				msg = "the slave returned neither a result nor an error"
			}
			p.done <- outcome{evalErr: msg, slave: tg.ID}
		default:
			p.done <- outcome{result: *results[i].Result, slave: tg.ID}
		}
	}
}
