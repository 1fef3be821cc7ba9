package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
)

// maxGroup bounds the tasks sent to a slave in one call.
const maxGroup = 128

// grouper sends single expression tasks that wait at the same time to a
// slave in one POST /compute/batch call instead of one call each: under
// load, the master's second HTTP hop is paid once per group. A task that
// arrives while a sender is idle goes alone, at once. Each group is one job
// on the dispatcher (balanced, queued, retried on another slave); each task
// still records its final status exactly once, in its own runner.
type grouper struct {
	r       *Runner
	mu      sync.Mutex
	queue   []*pending
	wake    chan struct{}
	senders int
	stopped bool
}

// pending is a task waiting to be grouped.
type pending struct {
	id       string
	expr     string
	reqID    string
	deadline time.Time
	done     chan outcome
}

// outcome is what a task's runner learns from its group's call: a result,
// or an error (an evalError for the slave's verdict on this expression).
type outcome struct {
	result float64
	err    error
	slave  string
}

func newGrouper(r *Runner, senders int) *grouper {
	return &grouper{r: r, wake: make(chan struct{}, 1), senders: senders}
}

// start runs the senders until ctx ends; tasks queued then get ctx's error.
func (g *grouper) start(ctx context.Context) {
	for range g.senders {
		go g.sender(ctx)
	}
}

// depth is the number of tasks waiting to be grouped.
func (g *grouper) depth() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queue)
}

// submit queues a task and waits for its group's outcome.
func (g *grouper) submit(p *pending) outcome {
	p.done = make(chan outcome, 1)
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return outcome{err: context.Canceled}
	}
	g.queue = append(g.queue, p)
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
	return <-p.done
}

func (g *grouper) take() []*pending {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := min(len(g.queue), maxGroup)
	if n == 0 {
		return nil
	}
	group := make([]*pending, n)
	copy(group, g.queue[:n])
	clear(g.queue[:n])
	g.queue = g.queue[n:]
	if len(g.queue) > 0 {
		// Others wait: let another sender take them.
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	return group
}

func (g *grouper) sender(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			g.drain(ctx.Err())
			return
		case <-g.wake:
		}
		for {
			group := g.take()
			if group == nil {
				break
			}
			g.send(ctx, group)
		}
	}
}

// drain fails every queued task with err (the master is stopping).
func (g *grouper) drain(err error) {
	g.mu.Lock()
	q := g.queue
	g.queue = nil
	g.stopped = true
	g.mu.Unlock()
	for _, p := range q {
		p.done <- outcome{err: err}
	}
}

// send runs one group as one job on the dispatcher.
func (g *grouper) send(ctx context.Context, group []*pending) {
	r := g.r
	deadline := group[0].deadline
	req := api.ComputeBatchRequest{Expressions: make([]string, len(group))}
	for i, p := range group {
		req.Expressions[i] = p.expr
		if p.deadline.Before(deadline) {
			deadline = p.deadline
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var results []api.BatchItem
	tg, _, err := r.pool.Do(ctx, "", func(ctx context.Context, tg dispatch.Target, _ int) error {
		for _, p := range group {
			r.assigned(p.id, tg.ID)
		}
		resp, err := r.slaves.ComputeBatch(ctx, tg, req, group[0].reqID)
		if err == nil {
			err = CheckBatch(tg.ID, resp.Results, len(group))
		}
		if err != nil {
			for _, p := range group {
				r.requeued(p.id)
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
			p.done <- outcome{err: evalError{results[i].Error}, slave: tg.ID}
		default:
			p.done <- outcome{result: *results[i].Result, slave: tg.ID}
		}
	}
}

// CheckBatch says whether a batch answer is well formed: one item per
// expression, each with exactly one of a result and an error. Anything else
// is the slave's fault (the job runs elsewhere).
func CheckBatch(slave string, items []api.BatchItem, want int) error {
	if len(items) != want {
		return fmt.Errorf("slave %s returned %d results for %d expressions", slave, len(items), want)
	}
	for i, it := range items {
		if (it.Result == nil) == (it.Error == "") {
			return fmt.Errorf("slave %s: item %d of its batch answer holds %w", slave, i, errNotOneAnswer)
		}
	}
	return nil
}
