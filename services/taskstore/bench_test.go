package taskstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
)

// BenchmarkTaskLife is one synchronous task's life in the store, as the
// master lives it: created, marked assigned, finished, with time-ordered
// ids; the writer's group commits (bbolt, fsync) run in the background and
// Close waits for the last one, so with -cpu 1 the time per op is the CPU
// the store spends per task.
func BenchmarkTaskLife(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r := 42.0
	base := time.Now().UnixNano()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("task-%x%04x", base+int64(i), i&0xffff)
		t := api.Task{ID: id, Expression: fmt.Sprintf("%d * (2 + 3) - 7 / 2", i), Status: api.StatusQueued, CreatedAt: time.Now().UTC()}
		if _, _, err := s.Create(ctx, t, Request{Expression: t.Expression, HashKey: "127.0.0.1", RequestID: "0123456789abcdef"}); err != nil {
			b.Fatal(err)
		}
		_, _ = s.Update(id, func(t *api.Task) { t.Status, t.Slave, t.Attempts = api.StatusAssigned, "slave-1", 1 })
		_, _ = s.Update(id, func(t *api.Task) {
			now := time.Now().UTC()
			t.Status, t.Result, t.FinishedAt, t.DurationMS = api.StatusCompleted, &r, &now, 0.5
		})
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}
