package runner

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlines hands out the contexts that bound tasks to the runner's
// deadline. Tasks accepted within one step share one context (its
// deadline is the end of their step, at most one step later than each
// task's own), so a task costs no context, timer or registration with the
// runner's context of its own: at 20k tasks/s those were ~3 of a task's 16
// allocations and a lock shared by every task. A shared context is never
// cancelled early; it ends at its deadline (its timer releases it) or
// when the runner stops.
type deadlines struct {
	parent   context.Context
	deadline time.Duration
	step     time.Duration

	cur atomic.Pointer[deadlineStep]
	mu  sync.Mutex // makes one new step at a time
}

// deadlineStep is the context of the tasks accepted in one step.
type deadlineStep struct {
	ctx    context.Context
	cancel context.CancelFunc // never called early: its own timer ends it at end, the runner's stop before
	end    time.Time
}

// newDeadlines shares contexts over steps of deadline/1000, between 1 ms
// and 10 ms (30 s tasks: 10 ms).
func newDeadlines(parent context.Context, deadline time.Duration) *deadlines {
	return &deadlines{parent: parent, deadline: deadline, step: min(max(deadline/1000, time.Millisecond), 10*time.Millisecond)}
}

// context returns a context that ends between the deadline and one step
// after it, from now.
func (d *deadlines) context() context.Context {
	want := time.Now().Add(d.deadline)
	if st := d.cur.Load(); st != nil && fits(st.end, want, d.step) {
		return st.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if st := d.cur.Load(); st != nil && fits(st.end, want, d.step) {
		return st.ctx
	}
	end := want.Truncate(d.step).Add(d.step)
	st := &deadlineStep{end: end}
	st.ctx, st.cancel = context.WithDeadline(d.parent, end)
	d.cur.Store(st)
	return st.ctx
}

// fits says whether a context ending at end bounds a task due at want:
// not before it, and at most one step after.
func fits(end, want time.Time, step time.Duration) bool {
	return !end.Before(want) && end.Sub(want) <= step
}
