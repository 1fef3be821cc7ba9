// Package taskstore keeps the master's calculator tasks in memory and in an
// embedded bbolt file, written in groups: many changes share one
// transaction (one fsync).
//
// Every change is applied to memory at once and queued; a single writer
// writes the queue in one bbolt transaction every FlushEvery, or at once
// when someone waits for durability or many changes wait (while a write is
// in progress, the next one gathers everything queued meanwhile). What
// holds:
//
//   - Durable acknowledgement. Durable(id) returns once the commit holding
//     the task's creation is on disk, so a caller that acknowledges only
//     then (the master's async 202) never acknowledges a task a crash can
//     lose. Every task created in the same window shares that one commit.
//   - Backpressure. Create waits while the writer is behind (a write has
//     taken longer than FlushEvery, or MaxPending changes wait), so the
//     changes not yet on disk stay bounded whatever the disk does.
//   - No dropped write. A write that fails is kept and retried (backoff up
//     to two seconds) until it succeeds; meanwhile Err reports the failure
//     and Create refuses new tasks with ErrUnavailable. When the disk
//     accepts writes again, the store recovers by itself.
//   - Retention by count and by size: past MaxTasks tasks or MaxBytes of
//     stored tasks, the oldest finished ones are dropped.
//
// Close writes everything still queued, so a clean stop loses nothing.
package taskstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/calclab/calclab/services/api"
)

var bucketTasks = []byte("tasks")

// Errors of the store.
var (
	// ErrNotFound is returned for an unknown task id.
	ErrNotFound = errors.New("task not found")
	// ErrUnavailable wraps the disk error while the store cannot write.
	ErrUnavailable = errors.New("task store cannot write")
	// ErrClosed is returned by Create after Close.
	ErrClosed = errors.New("task store is closed")
)

// Options tunes a Store.
type Options struct {
	// FlushEvery is the group-commit interval (default 20ms).
	FlushEvery time.Duration
	// MaxTasks bounds retention: past it the oldest finished tasks are
	// dropped (default 100000).
	MaxTasks int
	// MaxBytes bounds retention by size, counted as the bytes of the
	// tasks' expressions and stored requests plus a fixed overhead per
	// task (default 256 MiB).
	MaxBytes int64
	// MaxPending is how many queued changes make Create wait for the
	// writer (default 16384); a quarter of it starts a write at once.
	MaxPending int
	// MaxWait bounds how long Create waits for a writer that is behind
	// (default 10s; the caller's context may end the wait sooner). The
	// error then wraps context.DeadlineExceeded.
	MaxWait time.Duration
	// Logger receives write errors (default slog.Default()).
	Logger *slog.Logger
}

// Request is the original submission, stored with its task so that a task
// found unfinished at start runs again exactly as it was submitted.
type Request struct {
	Expression string         `json:"expression,omitempty"`
	Operation  *api.Operation `json:"operation,omitempty"`
	HashKey    string         `json:"hash_key,omitempty"`
	RequestID  string         `json:"request_id,omitempty"`
}

// Empty reports whether r holds no task (a record written before requests
// were stored).
func (r Request) Empty() bool { return r.Expression == "" && r.Operation == nil }

// Size is what r counts against MaxBytes (and what the master caps).
func (r Request) Size() int {
	n := len(r.Expression) + len(r.HashKey) + len(r.RequestID)
	if r.Operation != nil {
		n += len(r.Operation.Operation) + 24*len(r.Operation.Operands)
	}
	return n
}

// Record is a stored task with its request.
type Record struct {
	Task    api.Task
	Request Request
}

// entryOverhead is what one task costs beyond its strings (struct, map
// entry, order slot), for MaxBytes.
const entryOverhead = 400

type entry struct {
	Seq  uint64   `json:"seq"`
	Task api.Task `json:"task"`
	Req  *Request `json:"request,omitempty"`

	commit *commit // the commit that writes its creation; nil: on disk
	size   int64
	queued bool // in Store.dirty: its latest state waits for a write
	gone   bool // removed from the store (abandoned or pruned)
}

// commit is one write of the queue: done closes when it is on disk (err
// nil) or has failed (err set; its changes are queued again).
type commit struct {
	done chan struct{}
	err  error
}

func newCommit() *commit { return &commit{done: make(chan struct{})} }

// Store holds tasks in memory, persisted to bbolt by a group-commit writer.
type Store struct {
	opts Options
	db   *bolt.DB

	mu    sync.Mutex
	tasks map[string]*entry
	order []string // ids by creation, oldest first (may hold dropped ids)
	seq   uint64
	bytes int64
	// dirty holds the entries whose latest state waits for a write, each
	// once (entry.queued), and deletes the ids to remove from disk; a
	// commit removes before it puts, so an id removed and then created
	// again ends up stored.
	dirty    []*entry
	deletes  []string
	waiters  map[string]chan struct{}
	counts   [numStatuses]int
	scanned  int     // entries pruneLocked looked at (tests: pruning stays amortised)
	cur      *commit // the commit gathering the changes queued now
	writing  time.Time
	progress chan struct{} // closed and replaced after every write
	failErr  error         // last write error; nil once a write succeeds
	failures uint64        // writes that failed
	closing  bool

	fault func() error // tests: makes a write fail as a disk error would (set under mu)

	// flushMu serializes Flush, whose scratch (flushScratch) is reused
	// from one write to the next: a write no longer allocates its records'
	// copies and encodings anew, which was a third of the master's
	// allocation under load.
	flushMu sync.Mutex
	scratch flushScratch

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
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 16384
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = 10 * time.Second
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
		opts:     opts,
		db:       db,
		tasks:    make(map[string]*entry),
		waiters:  make(map[string]chan struct{}),
		cur:      newCommit(),
		progress: make(chan struct{}),
		kick:     make(chan struct{}, 1),
		closed:   make(chan struct{}),
		stopped:  make(chan struct{}),
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
	// A store that exists is only read, so a full disk does not stop a
	// master from starting and serving what it has.
	exists := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		exists = tx.Bucket(bucketTasks) != nil
		return nil
	})
	var err error
	if !exists {
		err = s.db.Update(func(tx *bolt.Tx) error {
			_, err := tx.CreateBucket(bucketTasks)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("taskstore: create bucket: %w", err)
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTasks).ForEach(func(k, v []byte) error {
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
		e.size = entrySize(e.Task, e.Req)
		s.bytes += e.size
		s.tasks[e.Task.ID] = e
		s.order = append(s.order, e.Task.ID)
		s.counts[statusIndex(e.Task.Status)]++
		if e.Seq > s.seq {
			s.seq = e.Seq
		}
	}
	return nil
}

func entrySize(t api.Task, r *Request) int64 {
	n := int64(entryOverhead + len(t.ID) + len(t.Expression) + len(t.Error))
	if r != nil {
		n += int64(r.Size())
	}
	return n
}

// Create stores t with the request it came from, unless a task with its id
// exists. It returns the stored task and whether it was created now (false:
// an existing task was found, which makes client-chosen ids idempotent).
//
// Create waits while the writer is behind (MaxWait and ctx bound the wait), and
// refuses with ErrUnavailable while the store cannot write. The new task is
// in memory at once and on disk once Durable(t.ID) returns nil.
func (s *Store) Create(ctx context.Context, t api.Task, req Request) (api.Task, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var waited <-chan time.Time // MaxWait, from the first wait on
	for {
		if e, ok := s.tasks[t.ID]; ok {
			return e.Task, false, nil
		}
		if s.closing {
			return api.Task{}, false, ErrClosed
		}
		if err := s.errLocked(); err != nil {
			return api.Task{}, false, err
		}
		if !s.behindLocked() {
			break
		}
		ch := s.progress
		if waited == nil {
			tm := time.NewTimer(s.opts.MaxWait)
			defer tm.Stop()
			waited = tm.C
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			s.mu.Lock()
			return api.Task{}, false, fmt.Errorf("waiting for the task store's writer: %w", ctx.Err())
		case <-waited:
			s.mu.Lock()
			return api.Task{}, false, fmt.Errorf("waiting for the task store's writer for %s: %w", s.opts.MaxWait, context.DeadlineExceeded)
		}
		s.mu.Lock()
	}
	s.seq++
	// The entry and its request in one allocation.
	er := &struct {
		e entry
		r Request
	}{e: entry{Seq: s.seq, Task: t, commit: s.cur}, r: req}
	e := &er.e
	if !req.Empty() {
		e.Req = &er.r
	}
	e.size = entrySize(t, e.Req)
	s.bytes += e.size
	s.tasks[t.ID] = e
	s.order = append(s.order, t.ID)
	s.counts[statusIndex(t.Status)]++
	s.queueLocked(e)
	s.pruneLocked()
	s.signal()
	return t, true, nil
}

// behindLocked says whether the writer is behind: a write has been running
// for longer than the flush interval, or too many changes wait.
func (s *Store) behindLocked() bool {
	if s.queuedLocked() >= s.opts.MaxPending {
		return true
	}
	return !s.writing.IsZero() && time.Since(s.writing) > s.opts.FlushEvery
}

func (s *Store) errLocked() error {
	if s.failErr == nil {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, s.failErr)
}

// Err is nil while the store writes, and wraps ErrUnavailable and the last
// disk error while its writes fail.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errLocked()
}

// WriteFailures is the number of writes that failed (each is retried).
func (s *Store) WriteFailures() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failures
}

// Durable waits until the creation of the task with the given id is on
// disk. It returns an error wrapping ErrUnavailable when the write holding
// it failed (the change stays queued and is retried), or ctx's error.
func (s *Store) Durable(ctx context.Context, id string) error {
	s.mu.Lock()
	e, ok := s.tasks[id]
	if !ok {
		s.mu.Unlock()
		return ErrNotFound
	}
	c := e.commit
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	// Someone waits: write now rather than at the next tick (or right
	// after the write in progress, gathering everything queued meanwhile).
	select {
	case s.kick <- struct{}{}:
	default:
	}
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Abandon forgets a task whose creation was never acknowledged (its write
// failed): it is removed from memory and from disk, and waiters wake up.
func (s *Store) Abandon(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.tasks[id]
	if !ok {
		return
	}
	s.removeLocked(e)
	if ch, ok := s.waiters[id]; ok {
		close(ch)
		delete(s.waiters, id)
	}
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
		s.counts[statusIndex(before)]--
		s.counts[statusIndex(e.Task.Status)]++
	}
	s.queueLocked(e)
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
	t, ok := s.Get(id)
	if !ok {
		return api.Task{}, ErrNotFound
	}
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
		out.Total = s.counts[statusIndex(status)]
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

// Unfinished returns the tasks that were not final with their requests,
// oldest first: after a restart these are the ones to run again.
func (s *Store) Unfinished() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for _, id := range s.order {
		if e, ok := s.tasks[id]; ok && !e.Task.Done() {
			r := Record{Task: e.Task}
			if e.Req != nil {
				r.Request = *e.Req
			}
			out = append(out, r)
		}
	}
	return out
}

// Counts returns the number of stored tasks by status.
func (s *Store) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(statuses))
	for i, st := range statuses {
		if s.counts[i] != 0 {
			m[st] = s.counts[i]
		}
	}
	return m
}

// pruneLocked keeps the store within MaxTasks and MaxBytes. Past either, it drops the
// oldest finished tasks until a tenth of both is free again, so the
// scan runs once per MaxTasks/10 creations, not on every one (a scan per
// creation cost a busy master ~40% of its CPU). Unfinished tasks are never
// dropped.
func (s *Store) pruneLocked() {
	if len(s.tasks) <= s.opts.MaxTasks && s.bytes <= s.opts.MaxBytes {
		return
	}
	target := s.opts.MaxTasks - max(s.opts.MaxTasks/10, 1)
	targetBytes := s.opts.MaxBytes - s.opts.MaxBytes/10
	var kept []string
	i := 0
	for ; i < len(s.order) && (len(s.tasks) > target || s.bytes > targetBytes); i++ {
		s.scanned++
		id := s.order[i]
		e, ok := s.tasks[id]
		if !ok {
			continue
		}
		if e.Task.Done() {
			s.removeLocked(e)
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

// statuses are the task statuses the store counts, by statusIndex.
var statuses = [...]string{api.StatusQueued, api.StatusAssigned, api.StatusCompleted, api.StatusFailed}

// numStatuses counts statuses and one slot for any other string.
const numStatuses = len(statuses) + 1

// statusIndex is st's slot in Store.counts (a switch, not a map: it runs
// on every change of every task).
func statusIndex(st string) int {
	switch st {
	case api.StatusQueued:
		return 0
	case api.StatusAssigned:
		return 1
	case api.StatusCompleted:
		return 2
	case api.StatusFailed:
		return 3
	}
	return len(statuses)
}

// queueLocked queues e's latest state for the next write (once).
func (s *Store) queueLocked(e *entry) {
	if !e.queued {
		e.queued = true
		s.dirty = append(s.dirty, e)
	}
}

// removeLocked drops e from memory and queues its removal from disk.
func (s *Store) removeLocked(e *entry) {
	delete(s.tasks, e.Task.ID)
	s.counts[statusIndex(e.Task.Status)]--
	s.bytes -= e.size
	e.gone = true
	s.deletes = append(s.deletes, e.Task.ID)
}

// queuedLocked is the number of changes waiting for a write.
func (s *Store) queuedLocked() int { return len(s.dirty) + len(s.deletes) }

func (s *Store) signal() {
	if s.queuedLocked() >= s.opts.MaxPending/4 {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// maxRetryDelay bounds the backoff between retries of a failed write;
// closeTries is how often Close tries its final write.
const (
	maxRetryDelay = 2 * time.Second
	closeTries    = 3
)

func (s *Store) writer() {
	defer close(s.stopped)
	delay := s.opts.FlushEvery
	timer := time.NewTimer(delay)
	defer timer.Stop()
	kick := s.kick
	for {
		select {
		case <-timer.C:
		case <-kick:
			timer.Stop()
		case <-s.closed:
			// A few tries, so a stop on a briefly failing disk still
			// writes; never hang a shutdown on a dead one.
			var err error
			for try := range closeTries {
				if err = s.Flush(); err == nil {
					break
				}
				time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
			}
			if err != nil {
				s.opts.Logger.Error("taskstore: final write failed; queued changes are lost", "err", err)
			}
			return
		}
		start := time.Now()
		if err := s.Flush(); err != nil {
			// Retry with backoff; no early writes until one succeeds.
			delay = min(max(2*delay, 50*time.Millisecond), maxRetryDelay)
			kick = nil
			s.opts.Logger.Error("taskstore: write failed; retrying, new tasks refused until it succeeds", "err", err, "retry_in", delay)
			timer.Reset(delay)
			continue
		}
		if kick == nil {
			s.opts.Logger.Info("taskstore: writes succeed again")
		}
		delay, kick = s.opts.FlushEvery, s.kick
		// Writes start FlushEvery apart, or back to back when a write took
		// longer: what one commit gathers is at most FlushEvery of
		// creations (Create waits once a write has run that long).
		timer.Reset(max(s.opts.FlushEvery-time.Since(start), 0))
	}
}

type rec struct {
	key []byte
	val []byte
	e   *entry
}

// flushScratch is what one Flush needs beyond the changes themselves, kept
// for the next: the snapshots of the queued entries, their records, and
// the pieces of buffer the records are encoded into. bbolt needs keys and
// values only until the transaction ends, so a piece is free again once
// Flush returns.
type flushScratch struct {
	snaps  []entry
	recs   []rec
	pieces [][]byte
}

// Scratch kept between writes: at most keptPieces pieces of pieceSize (a
// burst may use more; those go to the collector), and slices of records
// no longer than keptRecords.
const (
	pieceSize   = max(64<<10, 2*maxRecord)
	keptPieces  = 32
	keptRecords = 1 << 14
)

// piece returns the i-th buffer piece, empty, allocating it if needed.
func (f *flushScratch) piece(i int) []byte {
	if i < len(f.pieces) {
		return f.pieces[i][:0]
	}
	b := make([]byte, 0, pieceSize)
	if len(f.pieces) < keptPieces {
		f.pieces = append(f.pieces, b)
	}
	return b
}

// reset drops what the scratch points to (tasks, records), so that a kept
// slice does not hold them alive, and forgets oversized slices.
func (f *flushScratch) reset() {
	clear(f.snaps)
	clear(f.recs)
	if cap(f.snaps) > keptRecords {
		f.snaps, f.recs = nil, nil
	}
	f.snaps, f.recs = f.snaps[:0], f.recs[:0]
}

// maxRecord is room enough for most encoded records (a longer one grows its
// piece of the write buffer).
const maxRecord = 16 << 10

// appendEntry appends e as json.Marshal(e) would, without reflection for
// the common record (a task and an expression request).
func appendEntry(b []byte, e *entry) ([]byte, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"task":`...)
	b, err := e.Task.AppendJSON(b)
	if err != nil {
		return b, err
	}
	if r := e.Req; r != nil {
		b = append(b, `,"request":`...)
		if r.Operation != nil {
			v, err := json.Marshal(r)
			if err != nil {
				return b, err
			}
			b = append(b, v...)
		} else {
			b = append(b, '{')
			sep := false
			for _, f := range [...]struct{ name, v string }{{"expression", r.Expression}, {"hash_key", r.HashKey}, {"request_id", r.RequestID}} {
				if f.v == "" {
					continue
				}
				if sep {
					b = append(b, ',')
				}
				b = append(b, '"')
				b = append(b, f.name...)
				b = append(b, `":`...)
				b = api.AppendJSONString(b, f.v)
				sep = true
			}
			b = append(b, '}')
		}
	}
	return append(b, '}'), nil
}

// Flush writes every queued change in one transaction. When the write
// fails, the changes are queued again (unless newer ones replaced them) and
// the error is returned; nothing is dropped.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	sc := &s.scratch
	defer sc.reset()
	s.mu.Lock()
	if s.queuedLocked() == 0 {
		s.mu.Unlock()
		return nil
	}
	c := s.cur
	s.cur = newCommit()
	dels := s.deletes
	recs, snaps := sc.recs, sc.snaps
	for _, e := range s.dirty {
		e.queued = false
		if e.gone {
			continue // its id is in dels
		}
		// A copy, encoded once the lock is released: Create and Update
		// do not wait for the encoding.
		snaps = append(snaps, entry{Seq: e.Seq, Task: e.Task, Req: e.Req})
		recs = append(recs, rec{e: e})
	}
	clear(s.dirty)
	s.dirty, s.deletes = s.dirty[:0], nil
	sc.snaps, sc.recs = snaps, recs // for reset, and the next write
	s.writing = time.Now()
	fault := s.fault
	s.mu.Unlock()

	var buf []byte
	pieces := 0
	kept := recs[:0]
	for i, r := range recs {
		if cap(buf)-len(buf) < maxRecord {
			// A new piece rather than a grown copy: the records already
			// written keep pointing into the old one.
			buf = sc.piece(pieces)
			pieces++
		}
		// The key, then the record, in the same piece.
		start := len(buf)
		buf = append(buf, snaps[i].Task.ID...)
		r.key = buf[start:len(buf):len(buf)]
		var err error
		if buf, err = appendEntry(buf, &snaps[i]); err != nil {
			// Cannot happen for api.Task; never retry it forever.
			s.opts.Logger.Error("taskstore: cannot encode task; not stored", "task", snaps[i].Task.ID, "err", err)
			buf = buf[:start]
			continue
		}
		r.val = buf[start+len(r.key) : len(buf) : len(buf)]
		kept = append(kept, r)
	}
	recs = kept

	err := s.write(dels, recs, fault)

	s.mu.Lock()
	s.writing = time.Time{}
	if err != nil {
		err = fmt.Errorf("taskstore: write %d records and %d removals: %w", len(recs), len(dels), err)
		// Everything goes again, before what was queued meanwhile: the
		// removals (a removal queued since is a repeat, harmless), and
		// each entry not queued again or removed since (those carry
		// their newer state themselves).
		s.deletes = append(dels, s.deletes...)
		for _, r := range recs {
			if r.e.commit == c {
				r.e.commit = s.cur
			}
			if !r.e.queued && !r.e.gone {
				s.queueLocked(r.e)
			}
		}
		s.failErr = err
		s.failures++
		c.err = fmt.Errorf("%w: %v", ErrUnavailable, err)
	} else {
		s.failErr = nil
	}
	close(c.done)
	close(s.progress)
	s.progress = make(chan struct{})
	s.mu.Unlock()
	return err
}

// write removes dels, then puts recs, in one transaction.
func (s *Store) write(dels []string, recs []rec, fault func() error) error {
	if fault != nil {
		if err := fault(); err != nil {
			return err
		}
	}
	slices.Sort(dels)
	slices.SortFunc(recs, func(a, b rec) int { return bytes.Compare(a.key, b.key) })
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTasks)
		b.FillPercent = 0.9
		for _, id := range dels {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, r := range recs {
			if err := b.Put(r.key, r.val); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close writes the queued changes and closes the file. Create fails with
// ErrClosed from now on.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		close(s.closed)
		<-s.stopped
		err = s.db.Close()
	})
	return err
}
