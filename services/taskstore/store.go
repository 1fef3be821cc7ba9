// Package taskstore keeps the master's calculator tasks in memory and in an
// embedded bbolt file, written in groups so that no disk sync sits on any
// task's path.
//
// Every change is applied to memory at once and queued; a single writer
// flushes the queue in one bbolt transaction (one fsync) every FlushEvery.
// A crash therefore loses at most the changes of the last FlushEvery (plus
// a flush in progress); Close flushes everything, so a clean stop loses
// nothing.
package taskstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/calclab/calclab/services/api"
)

var bucketTasks = []byte("tasks")

// ErrNotFound is returned for an unknown task id.
var ErrNotFound = errors.New("task not found")

// Options tunes a Store.
type Options struct {
	// FlushEvery is the group-commit interval (default 20ms).
	FlushEvery time.Duration
	// MaxTasks bounds retention: past it the oldest finished tasks are
	// dropped (default 100000).
	MaxTasks int
	// Logger receives flush errors (default slog.Default()).
	Logger *slog.Logger
}

type entry struct {
	Seq  uint64   `json:"seq"`
	Task api.Task `json:"task"`
}

// Store holds tasks in memory, persisted to bbolt by a group-commit writer.
type Store struct {
	opts Options
	db   *bolt.DB

	mu      sync.Mutex
	tasks   map[string]*entry
	order   []string // ids by creation, oldest first (may hold dropped ids)
	seq     uint64
	pending map[string]*entry // nil value: delete
	waiters map[string]chan struct{}
	counts  map[string]int
	scanned int // entries pruneLocked looked at (tests: pruning stays amortised)

	kick    chan struct{}
	closed  chan struct{}
	stopped chan struct{}
	once    sync.Once
}

// Open loads the store in dir (created if missing) and starts its writer.
func Open(dir string, opts Options) (*Store, error) {
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 20 * time.Millisecond
	}
	if opts.MaxTasks <= 0 {
		opts.MaxTasks = 100000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("taskstore: create data dir: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "tasks.db"), 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("taskstore: open %s: %w", filepath.Join(dir, "tasks.db"), err)
	}
	s := &Store{
		opts:    opts,
		db:      db,
		tasks:   make(map[string]*entry),
		pending: make(map[string]*entry),
		waiters: make(map[string]chan struct{}),
		counts:  make(map[string]int),
		kick:    make(chan struct{}, 1),
		closed:  make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if err := s.load(); err != nil {
		db.Close()
		return nil, err
	}
	go s.writer()
	return s, nil
}

func (s *Store) load() error {
	var all []*entry
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketTasks)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			e := new(entry)
			if err := json.Unmarshal(v, e); err != nil {
				s.opts.Logger.Warn("taskstore: skipping unreadable record", "key", string(k), "err", err)
				return nil
			}
			all = append(all, e)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("taskstore: load: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	for _, e := range all {
		s.tasks[e.Task.ID] = e
		s.order = append(s.order, e.Task.ID)
		s.counts[e.Task.Status]++
		if e.Seq > s.seq {
			s.seq = e.Seq
		}
	}
	return nil
}

// Create stores t unless a task with its id exists. It returns the stored
// task and whether it was created now (false: an existing task was found,
// which makes client-chosen ids idempotent).
func (s *Store) Create(t api.Task) (api.Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.tasks[t.ID]; ok {
		return e.Task, false
	}
	s.seq++
	e := &entry{Seq: s.seq, Task: t}
	s.tasks[t.ID] = e
	s.order = append(s.order, t.ID)
	s.counts[t.Status]++
	s.pending[t.ID] = e
	s.pruneLocked()
	s.signal()
	return t, true
}

// Update applies fn to the stored task with the given id and returns the
// result. fn must not keep the pointer. Waiters are woken when the task
// reaches a final status.
func (s *Store) Update(id string, fn func(*api.Task)) (api.Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tasks[id]
	if !ok {
		return api.Task{}, ErrNotFound
	}
	before := e.Task.Status
	fn(&e.Task)
	if e.Task.Status != before {
		s.counts[before]--
		s.counts[e.Task.Status]++
	}
	s.pending[id] = e
	if e.Task.Done() {
		if ch, ok := s.waiters[id]; ok {
			close(ch)
			delete(s.waiters, id)
		}
	}
	s.signal()
	return e.Task, nil
}

// Get returns the task with the given id.
func (s *Store) Get(id string) (api.Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tasks[id]
	if !ok {
		return api.Task{}, false
	}
	return e.Task, true
}

// Wait blocks until the task is final or ctx ends, then returns its latest
// state.
func (s *Store) Wait(ctx context.Context, id string) (api.Task, error) {
	s.mu.Lock()
	e, ok := s.tasks[id]
	if !ok {
		s.mu.Unlock()
		return api.Task{}, ErrNotFound
	}
	if e.Task.Done() {
		t := e.Task
		s.mu.Unlock()
		return t, nil
	}
	ch, ok := s.waiters[id]
	if !ok {
		ch = make(chan struct{})
		s.waiters[id] = ch
	}
	s.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
	t, _ := s.Get(id)
	return t, nil
}

// List returns up to limit tasks, newest first, optionally only those with
// the given status, starting after cursor (a value from a previous page).
func (s *Store) List(status string, limit int, cursor string) (api.TaskList, error) {
	var after uint64
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil || n == 0 {
			return api.TaskList{}, fmt.Errorf("invalid cursor %q: use the next_cursor of a previous page", cursor)
		}
		after = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := api.TaskList{Tasks: []api.Task{}}
	if status == "" {
		out.Total = len(s.tasks)
	} else {
		out.Total = s.counts[status]
	}
	var last uint64
	for i := len(s.order) - 1; i >= 0; i-- {
		e, ok := s.tasks[s.order[i]]
		if !ok || (after != 0 && e.Seq >= after) {
			continue
		}
		if status != "" && e.Task.Status != status {
			continue
		}
		if len(out.Tasks) == limit {
			out.NextCursor = fmt.Sprint(last)
			break
		}
		out.Tasks = append(out.Tasks, e.Task)
		last = e.Seq
	}
	return out, nil
}

// Unfinished returns the tasks that were not final, oldest first: after a
// restart these are the ones to run again.
func (s *Store) Unfinished() []api.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Task
	for _, id := range s.order {
		if e, ok := s.tasks[id]; ok && !e.Task.Done() {
			out = append(out, e.Task)
		}
	}
	return out
}

// Counts returns the number of stored tasks by status.
func (s *Store) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		m[k] = v
	}
	return m
}

// pruneLocked keeps the store within MaxTasks. Past it, it drops the
// oldest finished tasks until a tenth of MaxTasks is free again, so the
// scan runs once per MaxTasks/10 creations, not on every one (a scan per
// creation cost a busy master ~40% of its CPU). Unfinished tasks are never
// dropped.
func (s *Store) pruneLocked() {
	if len(s.tasks) <= s.opts.MaxTasks {
		return
	}
	target := s.opts.MaxTasks - max(s.opts.MaxTasks/10, 1)
	var kept []string
	i := 0
	for ; i < len(s.order) && len(s.tasks) > target; i++ {
		s.scanned++
		id := s.order[i]
		e, ok := s.tasks[id]
		if !ok {
			continue
		}
		if e.Task.Done() {
			delete(s.tasks, id)
			s.counts[e.Task.Status]--
			s.pending[id] = nil
			continue
		}
		kept = append(kept, id)
	}
	// order = kept unfinished ids, then everything not scanned.
	rest := s.order[i:]
	n := copy(s.order, kept)
	n += copy(s.order[n:], rest)
	clear(s.order[n:])
	s.order = s.order[:n]
}

func (s *Store) signal() {
	if len(s.pending) >= 4096 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) writer() {
	defer close(s.stopped)
	t := time.NewTicker(s.opts.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.closed:
			if err := s.Flush(); err != nil {
				s.opts.Logger.Error("taskstore: final flush failed", "err", err)
			}
			return
		}
		if err := s.Flush(); err != nil {
			s.opts.Logger.Error("taskstore: flush failed", "err", err)
		}
	}
}

// Flush writes every queued change in one transaction.
func (s *Store) Flush() error {
	s.mu.Lock()
	if len(s.pending) == 0 {
		s.mu.Unlock()
		return nil
	}
	type rec struct {
		key []byte
		val []byte
	}
	recs := make([]rec, 0, len(s.pending))
	for id, e := range s.pending {
		r := rec{key: []byte(id)}
		if e != nil {
			v, err := json.Marshal(e)
			if err != nil {
				s.mu.Unlock()
				return fmt.Errorf("taskstore: encode %s: %w", id, err)
			}
			r.val = v
		}
		recs = append(recs, r)
	}
	clear(s.pending)
	s.mu.Unlock()
	sort.Slice(recs, func(i, j int) bool { return string(recs[i].key) < string(recs[j].key) })
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		for _, r := range recs {
			var err error
			if r.val == nil {
				err = b.Delete(r.key)
			} else {
				err = b.Put(r.key, r.val)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("taskstore: write %d records: %w", len(recs), err)
	}
	return nil
}

// Close flushes pending changes and closes the file.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		<-s.stopped
		err = s.db.Close()
	})
	return err
}
