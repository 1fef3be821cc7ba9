package taskstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/calclab/calclab/services/api"
)

func open(t *testing.T, dir string, opts Options) *Store {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func task(id, status string) api.Task {
	return api.Task{ID: id, Expression: "1+1", Status: status, CreatedAt: time.Now().UTC()}
}

func TestCreateIsIdempotent(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	if _, created := s.Create(task("a", api.StatusQueued)); !created {
		t.Fatal("first Create did not create")
	}
	got, created := s.Create(api.Task{ID: "a", Expression: "2+2", Status: api.StatusQueued})
	if created || got.Expression != "1+1" {
		t.Fatalf("second Create with the same id: created=%v expr=%q; want the existing task back", created, got.Expression)
	}
}

func TestWaitWakesOnFinalStatus(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	s.Create(task("a", api.StatusQueued))
	go func() {
		time.Sleep(20 * time.Millisecond)
		s.Update("a", func(t *api.Task) { t.Status = api.StatusAssigned })
		time.Sleep(20 * time.Millisecond)
		v := 2.0
		s.Update("a", func(t *api.Task) { t.Status, t.Result = api.StatusCompleted, &v })
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := s.Wait(ctx, "a")
	if err != nil || got.Status != api.StatusCompleted || got.Result == nil || *got.Result != 2 {
		t.Fatalf("Wait returned %+v, %v; want the completed task", got, err)
	}
	if _, err := s.Wait(ctx, "missing"); err != ErrNotFound {
		t.Fatalf("Wait on an unknown id = %v, want ErrNotFound", err)
	}
}

func TestListPagesNewestFirstAndFilters(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	defer s.Close()
	for i := range 25 {
		st := api.StatusCompleted
		if i%5 == 0 {
			st = api.StatusFailed
		}
		s.Create(task(fmt.Sprintf("t%02d", i), st))
	}
	tests := []struct {
		name   string
		status string
		limit  int
		want   []string // ids of every page, concatenated
		total  int
	}{
		{"all in pages of 10", "", 10, nil, 25},
		{"failed only", api.StatusFailed, 2, []string{"t20", "t15", "t10", "t05", "t00"}, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ids []string
			cursor := ""
			pages := 0
			for {
				l, err := s.List(tc.status, tc.limit, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if l.Total != tc.total {
					t.Fatalf("total = %d, want %d", l.Total, tc.total)
				}
				for _, x := range l.Tasks {
					ids = append(ids, x.ID)
				}
				pages++
				if l.NextCursor == "" {
					break
				}
				cursor = l.NextCursor
			}
			if len(ids) != tc.total {
				t.Fatalf("paged through %d tasks in %d pages, want %d", len(ids), pages, tc.total)
			}
			if ids[0] != fmt.Sprintf("t%02d", 24) && tc.status == "" {
				t.Fatalf("first task %s, want newest t24", ids[0])
			}
			if tc.want != nil && fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Fatalf("ids %v, want %v", ids, tc.want)
			}
		})
	}
	if _, err := s.List("", 10, "bogus"); err == nil {
		t.Fatal("a bogus cursor was accepted")
	}
}

func TestTasksSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: time.Hour}) // only Close flushes
	v := 20.0
	s.Create(task("done", api.StatusQueued))
	s.Update("done", func(t *api.Task) { t.Status, t.Result = api.StatusCompleted, &v })
	s.Create(task("running", api.StatusAssigned))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	defer s.Close()
	got, ok := s.Get("done")
	if !ok || got.Status != api.StatusCompleted || *got.Result != 20 {
		t.Fatalf("after reopen: %+v %v; want the completed task with result 20", got, ok)
	}
	un := s.Unfinished()
	if len(un) != 1 || un[0].ID != "running" {
		t.Fatalf("unfinished after reopen = %+v, want [running]", un)
	}
	if c := s.Counts(); c[api.StatusCompleted] != 1 || c[api.StatusAssigned] != 1 {
		t.Fatalf("counts after reopen = %v", c)
	}
}

func TestGroupCommitWritesWithoutClose(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{FlushEvery: 5 * time.Millisecond})
	s.Create(task("a", api.StatusQueued))
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		s.db.View(func(tx *bolt.Tx) error {
			n = tx.Bucket(bucketTasks).Stats().KeyN
			return nil
		})
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("task not on disk 5s after creation: the group-commit writer is not flushing")
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.Close()
}

func TestRetentionDropsOldestFinished(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{MaxTasks: 10})
	s.Create(task("keep-running", api.StatusAssigned))
	for i := range 30 {
		s.Create(task(fmt.Sprintf("t%02d", i), api.StatusCompleted))
	}
	if _, ok := s.Get("keep-running"); !ok {
		t.Fatal("retention dropped an unfinished task")
	}
	if _, ok := s.Get("t00"); ok {
		t.Fatal("oldest finished task was kept past MaxTasks")
	}
	if _, ok := s.Get("t29"); !ok {
		t.Fatal("newest task was dropped")
	}
	l, _ := s.List("", 1000, "")
	if l.Total > 10 || l.Total < 9 || len(l.Tasks) != l.Total {
		t.Fatalf("after retention: total %d, listed %d; want 9-10 (MaxTasks 10, a tenth freed at a time)", l.Total, len(l.Tasks))
	}
	for i := 1; i < len(l.Tasks); i++ {
		if l.Tasks[i].ID != "keep-running" && l.Tasks[i-1].ID != "keep-running" && l.Tasks[i].ID > l.Tasks[i-1].ID {
			t.Fatalf("listing not newest first after pruning: %s before %s", l.Tasks[i-1].ID, l.Tasks[i].ID)
		}
	}
	total := l.Total
	s.Close()
	s = open(t, dir, Options{MaxTasks: 10})
	defer s.Close()
	l, _ = s.List("", 1000, "")
	if l.Total != total {
		t.Fatalf("after reopen: %d tasks on disk, want %d (dropped ones must be deleted from disk)", l.Total, total)
	}
}

// TestPruningIsAmortised: a store at its limit must not rescan every task
// on every creation (that cost a busy master ~40% of its CPU).
func TestPruningIsAmortised(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxTasks: 20000, FlushEvery: time.Hour})
	defer s.Close()
	for i := range 20000 {
		s.Create(task(fmt.Sprintf("a%06d", i), api.StatusCompleted))
	}
	for i := range 20000 {
		s.Create(task(fmt.Sprintf("b%06d", i), api.StatusCompleted))
	}
	if l, _ := s.List("", 1, ""); l.Total > 20000 {
		t.Fatalf("%d tasks kept, limit 20000", l.Total)
	}
	// 20,000 creations past the limit: a scan of the whole store on each
	// would look at 4e8 entries; amortised pruning looks at each dropped
	// entry once.
	s.mu.Lock()
	scanned := s.scanned
	s.mu.Unlock()
	if scanned > 2*20000 {
		t.Fatalf("pruning looked at %d entries for 20000 creations", scanned)
	}
}
