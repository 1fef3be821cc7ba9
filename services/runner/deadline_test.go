package runner

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestDeadlinesAreSharedWithinAStep: a task's context ends between its own
// deadline and one step after it; tasks started within a step share one;
// it ends with DeadlineExceeded at its deadline, or when the runner stops.
func TestDeadlinesAreSharedWithinAStep(t *testing.T) {
	for _, tc := range []struct {
		deadline, step time.Duration
	}{
		{30 * time.Second, 10 * time.Millisecond},
		{2 * time.Second, 2 * time.Millisecond},
		{50 * time.Millisecond, time.Millisecond},
	} {
		t.Run(tc.deadline.String(), func(t *testing.T) {
			parent, stop := context.WithCancel(context.Background())
			defer stop()
			d := newDeadlines(parent, tc.deadline)
			if d.step != tc.step {
				t.Fatalf("step %s, want %s", d.step, tc.step)
			}
			before := time.Now()
			ctx := d.context()
			after := time.Now()
			end, ok := ctx.Deadline()
			if !ok || end.Before(before.Add(tc.deadline)) || end.After(after.Add(tc.deadline+tc.step)) {
				t.Fatalf("deadline %s after the call, want %s to %s", end.Sub(before), tc.deadline, tc.deadline+tc.step)
			}
			if again := d.context(); time.Now().Add(tc.deadline).Before(end) && again != ctx {
				t.Fatal("a second task in the same step got a context of its own")
			}
			time.Sleep(tc.step + time.Millisecond)
			if later := d.context(); later == ctx {
				t.Fatal("a task a step later shares a context that ends before its deadline")
			}
			if tc.deadline <= 50*time.Millisecond {
				<-ctx.Done()
				if !errors.Is(ctx.Err(), context.DeadlineExceeded) || time.Now().Before(before.Add(tc.deadline)) {
					t.Fatalf("ended with %v after %s, want DeadlineExceeded after %s", ctx.Err(), time.Since(before), tc.deadline)
				}
				return
			}
			stop()
			<-ctx.Done()
			if !errors.Is(ctx.Err(), context.Canceled) {
				t.Fatalf("after the runner stopped: %v, want Canceled", ctx.Err())
			}
		})
	}
}
