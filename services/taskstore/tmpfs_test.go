package taskstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
)

// smallTmpfs mounts a tmpfs of the given size on a fresh directory (root
// only) and unmounts it when the test ends.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	for { // the last few bytes
		if _, err := f.Write(buf[:512]); err != nil {
			return
		}
	}
}

// TestFullDiskRefusesNewTasksKeepsQueuedWritesAndRecovers runs the store on
// a real file system that fills up (a 4 MiB tmpfs): writes fail with
// ENOSPC, the store says so and refuses new tasks, and once space returns
// every change made meanwhile is written.
func TestFullDiskRefusesNewTasksKeepsQueuedWritesAndRecovers(t *testing.T) {
	dir := smallTmpfs(t, "4m")
	s := open(t, filepath.Join(dir, "store"), Options{FlushEvery: 5 * time.Millisecond})
	for i := range 50 {
		mustCreate(t, s, task(fmt.Sprintf("pre%02d", i), api.StatusQueued))
	}
	if err := s.Durable(context.Background(), "pre49"); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	// Changes that need new pages: finish every task with a long error.
	long := strings.Repeat("x", 2000)
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; s.Err() == nil; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the store never noticed the full disk")
		}
		id := fmt.Sprintf("pre%02d", i%50)
		if _, err := s.Update(id, func(t *api.Task) { t.Status, t.Error = api.StatusFailed, long+id }); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			long += "y"
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := s.Err(); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("Err on a full disk = %v, want ErrUnavailable naming ENOSPC", err)
	}
	if _, _, err := s.Create(context.Background(), task("refused", api.StatusQueued), Request{Expression: "1+1"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Create on a full disk = %v, want ErrUnavailable", err)
	}
	final := "final-" + long
	for i := range 50 {
		id := fmt.Sprintf("pre%02d", i)
		s.Update(id, func(t *api.Task) { t.Status, t.Error = api.StatusFailed, final+id })
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for s.Err() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("store did not recover after space returned: %v", s.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	mustCreate(t, s, task("after", api.StatusQueued))
	if err := s.Durable(context.Background(), "after"); err != nil {
		t.Fatalf("Durable after recovery: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, filepath.Join(dir, "store"), Options{})
	defer s.Close()
	for i := range 50 {
		id := fmt.Sprintf("pre%02d", i)
		if got, ok := s.Get(id); !ok || got.Error != final+id {
			t.Fatalf("%s after recovery and reopen: found=%v error=%.20q...; want the last update, made while the disk was full", id, ok, got.Error)
		}
	}
	if _, ok := s.Get("after"); !ok {
		t.Fatal("task created after recovery is missing")
	}
}
