// Package dispatch holds the master's registry of slaves and the dispatcher
// that runs every job (a calculator task, a batch chunk, a Mandelbrot tile)
// on them: a balancing policy picks a slave with free capacity, jobs wait in
// a bounded FIFO queue when every slave is busy, a job whose slave fails is
// run again on another one, and slaves that keep failing are ejected and
// re-admitted with backoff.
package dispatch

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
)

// Errors returned by Admit; the HTTP layer maps both to 503.
var (
	ErrNoSlaves  = errors.New("no healthy slave is registered")
	ErrQueueFull = errors.New("every slave is busy and the queue is full")
)

// Errors of a job that did not complete.
var (
	// ErrTriesExhausted: the job failed on MaxTries different slaves (each a
	// slave fault); failing again on a slave it already failed on (the only
	// one free) waits instead, within the job's deadline.
	ErrTriesExhausted = errors.New("no slave could run the job")
	// ErrJobFault: the job failed the same suspect way (timeout, 5xx) on
	// two slaves: it is the job, not the slaves. It is wrapped Permanent.
	ErrJobFault = errors.New("the job failed the same way on two slaves")
)

// Errors of Join and Verify (slave identity).
var (
	ErrUnknownSlave = errors.New("slave is not registered")
	ErrRemoved      = errors.New("slave was removed by an operator")
	ErrWrongSecret  = errors.New("missing or wrong slave secret")
	// ErrTakenID: a live slave id holds another webhook; re-pointing it
	// needs that slave's secret.
	ErrTakenID = errors.New("slave id is registered at another webhook")
)

// MaxCapacity bounds the capacity a slave may claim.
const MaxCapacity = 4096

// Config tunes a Pool.
type Config struct {
	// Policy picks a slave for each job (default least-conn).
	Policy balancer.Policy
	// MaxQueue bounds the jobs waiting for a free slave (default 10000).
	MaxQueue int
	// FailThreshold is how many failures in a row eject a slave (default
	// 3). Failed health checks and failed jobs are counted apart: a passing
	// health check does not clear a slave's job failures (passive outlier
	// detection, as Envoy does), and either count ejects.
	FailThreshold int
	// MaxTries bounds the tries of one job (default 3); the job's context
	// bounds its time.
	MaxTries int
	// EjectBase and EjectMax bound the re-admission backoff (1s, 30s).
	EjectBase, EjectMax time.Duration
	// ForgetAfter removes a slave that stayed down this long (10m).
	ForgetAfter time.Duration
	// DefaultCapacity is used when a slave reports none (default 2).
	DefaultCapacity int
	// TaskPipeline is how many calculator jobs (ClassTask) may be in
	// flight on a slave per unit of its capacity (default 1). The master
	// sets more when it sends tasks on a pipelined stream: the slave still
	// evaluates capacity groups at once and the rest wait in its socket,
	// where the next read takes them all as one group.
	TaskPipeline int
	Logger       *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Events is told of slave failures, ejections, retries and removals
	// (the master's metrics); nil: nobody.
	Events Events
}

// Failure sources: what a slave failed.
const (
	SourceCheck = "check" // an active health check
	SourceJob   = "job"   // a job (task, batch chunk, tile) run on it
)

// Events is told what happens to the slaves of a pool. Its methods are
// called with the pool's lock held: they must be quick and must not call
// the pool.
type Events interface {
	// Failed: slave failed a health check or a job (source), with err.
	Failed(slave, source string, err error)
	// Ejected: slave was taken out of rotation for failures of source.
	Ejected(slave, source string)
	// Retried: a job of class c is tried again on another slave.
	Retried(c Class)
	// Removed: slave left the pool (its series can go).
	Removed(slave string)
}

type noEvents struct{}

func (noEvents) Failed(string, string, error) {}
func (noEvents) Ejected(string, string)       {}
func (noEvents) Retried(Class)                {}
func (noEvents) Removed(string)               {}

// Target is the address of the slave a job attempt runs on.
type Target struct {
	ID  string
	URL string
}

// Class is a kind of job. Each class has its own capacity on every slave
// (the slave's capacity each), so a heavy render's tiles never take the
// slots calculator tasks need.
type Class int

// Job classes.
const (
	ClassTask Class = iota // calculator tasks and batch chunks
	ClassTile              // Mandelbrot tiles
	numClasses
)

func (c Class) String() string {
	if c == ClassTile {
		return "tile"
	}
	return "task"
}

type slave struct {
	id        string
	url       string
	secret    string
	version   string
	capacity  int
	inflight  [numClasses]int
	tasksDone uint64
	checkFail int // failed health checks in a row
	jobFail   int // failed jobs in a row (passive outlier detection)
	ejections int
	down      bool
	draining  bool
	downSince time.Time
	until     time.Time // ejected until
	backoff   time.Duration
	upSince   time.Time
	lastSeen  time.Time
	latency   time.Duration // EWMA
	// lastFailure and lastFailureAt are the last failed health check or
	// job and when: kept after the slave recovers.
	lastFailure   string
	lastFailureAt time.Time
}

type waiter struct {
	ch      chan *slave
	class   Class
	policy  balancer.Policy
	key     string
	exclude map[string]bool
}

func (s *slave) busy() int {
	n := 0
	for _, v := range s.inflight {
		n += v
	}
	return n
}

// Pool is the registry of slaves and the queue of jobs waiting for one.
type Pool struct {
	cfg Config

	mu         sync.Mutex
	slaves     []*slave
	byID       map[string]*slave
	byURL      map[string]*slave
	tombstones map[string]time.Time
	waiters    []*waiter
	cands      []balancer.Backend
	candSlaves []*slave
	changed    chan struct{} // closed and replaced on every registry change
}

// NewPool returns an empty pool.
func NewPool(cfg Config) *Pool {
	if cfg.Policy == nil {
		p, _ := balancer.New(balancer.Default)
		cfg.Policy = p
	}
	if cfg.MaxQueue <= 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.FailThreshold <= 0 {
		cfg.FailThreshold = 3
	}
	if cfg.MaxTries <= 0 {
		cfg.MaxTries = 3
	}
	if cfg.EjectBase <= 0 {
		cfg.EjectBase = time.Second
	}
	if cfg.EjectMax <= 0 {
		cfg.EjectMax = 30 * time.Second
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = 10 * time.Minute
	}
	if cfg.DefaultCapacity <= 0 {
		cfg.DefaultCapacity = 2
	}
	if cfg.TaskPipeline <= 0 {
		cfg.TaskPipeline = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Events == nil {
		cfg.Events = noEvents{}
	}
	return &Pool{
		cfg:        cfg,
		byID:       make(map[string]*slave),
		byURL:      make(map[string]*slave),
		tombstones: make(map[string]time.Time),
		changed:    make(chan struct{}),
	}
}

// NewSlaveID returns a fresh id of the form slave-xxxxxxxx.
func NewSlaveID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "slave-" + hex.EncodeToString(b[:])
}

// NewSecret returns a fresh 128-bit slave secret, hex.
func NewSecret() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Registration is what a slave asks for when it joins.
type Registration struct {
	URL      string
	ID       string // "" lets the pool choose
	Capacity int
	Version  string
	// Secret is the slave's secret from its previous registration, if any.
	Secret string
}

// Registered is the pool's answer to a registration.
type Registered struct {
	ID      string
	Secret  string // present it on heartbeats, deregistration, re-registration
	Created bool
}

// Join adds a slave or refreshes an existing one, as Nomad does with a
// node's SecretID: every new registration gets a fresh secret. A live id
// keeps its webhook unless the registration presents that slave's secret
// (ErrTakenID otherwise); a slave that registers again from the webhook it
// is registered at (restarted, its secret lost) is the same slave: the
// caller has checked that this webhook answers as a calclab slave, and only
// the slave answers there. Such a refresh rotates the secret.
func (p *Pool) Join(r Registration) (Registered, error) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byURL[r.URL]
	if r.ID != "" {
		if byID := p.byID[r.ID]; byID != nil {
			if byID.url != r.URL && !secretMatches(byID.secret, r.Secret) {
				return Registered{}, fmt.Errorf("%w: %s is at %s", ErrTakenID, r.ID, byID.url)
			}
			s = byID
		}
	}
	if s != nil {
		if s.url != r.URL {
			delete(p.byURL, s.url)
			if other := p.byURL[r.URL]; other != nil && other != s {
				// The address moved to s: the slave that held it is gone.
				p.removeLocked(other, "its webhook was taken over by "+s.id+" (secret presented)", false)
			}
			s.url = r.URL
			p.byURL[r.URL] = s
		}
		if !secretMatches(s.secret, r.Secret) {
			s.secret = NewSecret()
		}
		// A refresh keeps what it does not restate.
		if r.Capacity > 0 {
			s.capacity = r.Capacity
		}
		if r.Version != "" {
			s.version = r.Version
		}
		s.lastSeen = now
		s.draining = false
		if s.down && !now.Before(s.until) {
			// A slave that registers again has just started: give it a
			// chance, once its ejection time is over.
			s.down, s.checkFail, s.jobFail, s.upSince = false, 0, 0, now
		}
		p.notifyLocked()
		return Registered{ID: s.id, Secret: s.secret}, nil
	}
	id := r.ID
	if id == "" {
		id = NewSlaveID()
	}
	delete(p.tombstones, id)
	capacity := r.Capacity
	if capacity <= 0 {
		capacity = p.cfg.DefaultCapacity
	}
	s = &slave{id: id, url: r.URL, secret: NewSecret(), version: r.Version, capacity: capacity, lastSeen: now, upSince: now, backoff: p.cfg.EjectBase}
	p.slaves = append(p.slaves, s)
	p.byID[id] = s
	p.byURL[r.URL] = s
	p.cfg.Logger.Info("slave registered", "slave", id, "url", r.URL, "capacity", capacity)
	p.notifyLocked()
	return Registered{ID: id, Secret: s.secret, Created: true}, nil
}

// Register is Join for trusted in-process callers (tests, embedding): it
// presents the slave's own secret, so it can re-point a live id. It returns
// the slave's id and whether it is new.
func (p *Pool) Register(url, id string, capacity int, version string) (string, bool) {
	p.mu.Lock()
	secret := ""
	if s := p.byID[id]; s != nil {
		secret = s.secret
	}
	p.mu.Unlock()
	r, err := p.Join(Registration{URL: url, ID: id, Capacity: capacity, Version: version, Secret: secret})
	if err != nil { // the secret rotated in between: a new id
		r, _ = p.Join(Registration{URL: url, Capacity: capacity, Version: version})
	}
	return r.ID, r.Created
}

func secretMatches(want, got string) bool {
	return want != "" && got != "" && subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

// Verify checks that secret is the one given to slave id at registration.
// It returns ErrUnknownSlave, ErrRemoved or ErrWrongSecret.
func (p *Pool) Verify(id, secret string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[id]
	if s == nil {
		if _, ok := p.tombstones[id]; ok {
			return ErrRemoved
		}
		return ErrUnknownSlave
	}
	if !secretMatches(s.secret, secret) {
		return ErrWrongSecret
	}
	return nil
}

// HeartbeatResult says what the master knows of a slave that sent a heartbeat.
type HeartbeatResult int

// Heartbeat results.
const (
	HeartbeatOK      HeartbeatResult = iota
	HeartbeatUnknown                 // not registered: the slave should register again
	HeartbeatRemoved                 // drained and removed by an operator: the slave should stop
)

// Heartbeat records that a slave is alive.
func (p *Pool) Heartbeat(id string, hb api.Heartbeat) HeartbeatResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[id]
	if s == nil {
		if _, ok := p.tombstones[id]; ok {
			return HeartbeatRemoved
		}
		return HeartbeatUnknown
	}
	s.lastSeen = p.cfg.Now()
	if hb.Capacity > 0 && hb.Capacity != s.capacity {
		s.capacity = min(hb.Capacity, MaxCapacity)
		p.notifyLocked()
	}
	return HeartbeatOK
}

// Drain stops new work for a slave; it is removed once its in-flight jobs
// finish. It reports whether the slave was known and whether it is already
// gone.
func (p *Pool) Drain(id string) (known, removed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[id]
	if s == nil {
		return false, false
	}
	s.draining = true
	if s.busy() == 0 {
		p.removeLocked(s, "drained", true)
		return true, true
	}
	p.cfg.Logger.Info("slave draining", "slave", id, "in_flight", s.busy())
	return true, false
}

// removeLocked drops a slave from the registry. A tombstone (drained by an
// operator) makes its next heartbeat answer "removed" so it stays out; a
// slave forgotten for being down is welcome to register again.
func (p *Pool) removeLocked(s *slave, why string, tombstone bool) {
	i := slices.Index(p.slaves, s)
	if i < 0 {
		return
	}
	p.slaves = slices.Delete(p.slaves, i, i+1)
	delete(p.byID, s.id)
	delete(p.byURL, s.url)
	now := p.cfg.Now()
	for id, at := range p.tombstones {
		if now.Sub(at) > time.Hour {
			delete(p.tombstones, id)
		}
	}
	if tombstone {
		p.tombstones[s.id] = now
	}
	p.cfg.Logger.Info("slave removed", "slave", s.id, "reason", why)
	p.cfg.Events.Removed(s.id)
	p.notifyLocked()
}

// Admit says whether a new job can be accepted now: there must be a healthy
// slave and room in the queue.
func (p *Pool) Admit() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	healthy := false
	for _, s := range p.slaves {
		if !s.down && !s.draining {
			healthy = true
			break
		}
	}
	if !healthy {
		return ErrNoSlaves
	}
	if len(p.waiters) >= p.cfg.MaxQueue {
		return ErrQueueFull
	}
	return nil
}

// QueueDepth is the number of jobs waiting for a free slave.
func (p *Pool) QueueDepth() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.waiters)
}

// Changed returns a channel closed at the next registry change.
func (p *Pool) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
	p.serveWaitersLocked()
}

// pickLocked chooses a slave with free capacity for a job of class c,
// avoiding the slaves in exclude when another one is available.
func (p *Pool) pickLocked(c Class, pol balancer.Policy, key string, exclude map[string]bool) *slave {
	if pol == nil {
		pol = p.cfg.Policy
	}
	p.cands = p.cands[:0]
	p.candSlaves = p.candSlaves[:0]
	excluded := false
	for _, s := range p.slaves {
		healthy := !s.down && !s.draining
		if healthy && exclude[s.id] {
			healthy, excluded = false, true
		}
		p.cands = append(p.cands, balancer.Backend{ID: s.id, InFlight: s.inflight[c], Capacity: p.slots(s, c), Latency: s.latency, Healthy: healthy})
		p.candSlaves = append(p.candSlaves, s)
	}
	i := pol.Pick(p.cands, key)
	if i < 0 && excluded {
		for j := range p.cands {
			if exclude[p.cands[j].ID] && !p.candSlaves[j].down && !p.candSlaves[j].draining {
				p.cands[j].Healthy = true
			}
		}
		i = pol.Pick(p.cands, key)
	}
	if i < 0 {
		return nil
	}
	s := p.candSlaves[i]
	s.inflight[c]++
	return s
}

// slots is how many jobs of class c may run on s at once.
func (p *Pool) slots(s *slave, c Class) int {
	if c == ClassTask {
		return s.capacity * p.cfg.TaskPipeline
	}
	return s.capacity
}

// serveWaitersLocked hands free slots to waiting jobs, in FIFO order within
// each class: a tile that cannot be placed does not hold up a task.
func (p *Pool) serveWaitersLocked() {
	var blocked [numClasses]bool
	kept := p.waiters[:0]
	for _, w := range p.waiters {
		if !blocked[w.class] {
			if s := p.pickLocked(w.class, w.policy, w.key, w.exclude); s != nil {
				w.ch <- s
				continue
			}
			blocked[w.class] = true
		}
		kept = append(kept, w)
	}
	clear(p.waiters[len(kept):])
	p.waiters = kept
}

// acquire returns a slave with a reserved slot of class c, waiting in the
// FIFO queue until one is free or ctx ends.
func (p *Pool) acquire(ctx context.Context, c Class, pol balancer.Policy, key string, exclude map[string]bool) (*slave, error) {
	p.mu.Lock()
	queued := false
	for _, w := range p.waiters {
		if w.class == c {
			queued = true
			break
		}
	}
	if !queued {
		if s := p.pickLocked(c, pol, key, exclude); s != nil {
			p.mu.Unlock()
			return s, nil
		}
	}
	w := &waiter{ch: make(chan *slave, 1), class: c, policy: pol, key: key, exclude: exclude}
	p.waiters = append(p.waiters, w)
	p.mu.Unlock()
	select {
	case s := <-w.ch:
		return s, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if i := slices.Index(p.waiters, w); i >= 0 {
		p.waiters = slices.Delete(p.waiters, i, i+1)
		p.mu.Unlock()
		return nil, ctx.Err()
	}
	p.mu.Unlock()
	// A slot was handed over while we gave up: give it back.
	s := <-w.ch
	p.release(s, c, outcomeCancelled, 0, nil)
	return nil, ctx.Err()
}

type outcome int

const (
	outcomeOK        outcome = iota
	outcomeFailed            // the slave's fault: counted now
	outcomeCancelled         // nobody's fault (the job's context ended, a job fault)
)

func (p *Pool) release(s *slave, c Class, o outcome, latency time.Duration, why error) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s.inflight[c]--
	switch o {
	case outcomeOK:
		s.tasksDone++
		s.jobFail = 0
		s.lastSeen = now
		if s.latency == 0 {
			s.latency = latency
		} else {
			s.latency = (s.latency*7 + latency*3) / 10
		}
	case outcomeFailed:
		p.failedLocked(s, SourceJob, why, now)
		s.jobFail++
		p.maybeEjectLocked(s, now)
	}
	if s.draining && s.busy() == 0 {
		p.removeLocked(s, "drained", true)
		return
	}
	p.serveWaitersLocked()
}

// suspectTry is a suspect failure of a job on a slave, not yet judged.
type suspectTry struct {
	s   *slave
	err error
}

// blame counts one job failure against each slave in ss (a suspect failure
// confirmed by the job succeeding elsewhere).
func (p *Pool) blame(ss []suspectTry) {
	if len(ss) == 0 {
		return
	}
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range ss {
		s := t.s
		if p.byID[s.id] != s {
			continue
		}
		p.failedLocked(s, SourceJob, t.err, now)
		s.jobFail++
		p.maybeEjectLocked(s, now)
	}
}

// failedLocked records a failure of s (before its count goes up): its
// reason and time for GET /slaves, the event, and a warning when the
// slave was healthy until now (later failures in a row log at debug).
func (p *Pool) failedLocked(s *slave, source string, err error, now time.Time) {
	why := "unknown failure"
	if err != nil {
		why = err.Error()
	}
	if source == SourceCheck {
		why = "health check: " + why
	} else {
		why = "job: " + why
	}
	s.lastFailure, s.lastFailureAt = why, now
	p.cfg.Events.Failed(s.id, source, err)
	if !s.down && s.checkFail == 0 && s.jobFail == 0 {
		p.cfg.Logger.Warn("slave failing", "slave", s.id, "source", source, "reason", why)
		return
	}
	p.cfg.Logger.Debug("slave failed again", "slave", s.id, "source", source, "reason", why,
		"failed_checks", s.checkFail, "failed_jobs", s.jobFail)
}

// maybeEjectLocked ejects s when either of its failure counts reached the
// threshold, for its backoff (doubled at each ejection, up to EjectMax).
func (p *Pool) maybeEjectLocked(s *slave, now time.Time) {
	if s.down || (s.checkFail < p.cfg.FailThreshold && s.jobFail < p.cfg.FailThreshold) {
		return
	}
	s.down = true
	s.ejections++
	s.downSince = now
	s.until = now.Add(s.backoff)
	source := SourceJob
	if s.checkFail >= p.cfg.FailThreshold {
		source = SourceCheck
	}
	p.cfg.Events.Ejected(s.id, source)
	p.cfg.Logger.Warn("slave ejected", "slave", s.id, "failed_checks", s.checkFail, "failed_jobs", s.jobFail,
		"retry_in", s.backoff, "last_failure", s.lastFailure)
	s.backoff = min(s.backoff*2, p.cfg.EjectMax)
	p.notifyLocked()
}

// CheckResult records the outcome of an active health check of a slave:
// passed when err is nil, else failed for err (kept as the slave's last
// failure). A passing check clears failed checks only: an ejected slave
// comes back once its backoff is over and a check passes, and a slave that
// fails jobs while answering /health is still ejected by its job failures.
func (p *Pool) CheckResult(id string, err error, h api.Health) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[id]
	if s == nil {
		return
	}
	if err != nil {
		p.failedLocked(s, SourceCheck, err, now)
		s.checkFail++
		p.maybeEjectLocked(s, now)
		if s.down && now.Sub(s.downSince) > p.cfg.ForgetAfter {
			p.removeLocked(s, "down for too long", false)
		}
		return
	}
	s.lastSeen = now
	s.tasksDone = max(s.tasksDone, h.TasksDone)
	if h.Capacity > 0 && h.Capacity != s.capacity {
		s.capacity = min(h.Capacity, MaxCapacity)
	}
	if s.checkFail > 0 && !s.down {
		p.cfg.Logger.Info("slave passes health checks again", "slave", s.id, "failed_checks", s.checkFail)
	}
	s.checkFail = 0
	if s.down {
		if now.Before(s.until) {
			return
		}
		s.down, s.jobFail, s.upSince = false, 0, now
		p.cfg.Logger.Info("slave re-admitted", "slave", s.id, "ejections", s.ejections)
		p.notifyLocked()
		return
	}
	if now.Sub(s.upSince) > p.cfg.EjectMax && now.Sub(s.downSince) > p.cfg.EjectMax {
		s.backoff = p.cfg.EjectBase
	}
	p.serveWaitersLocked()
}

// Targets lists every registered slave (for active health checks).
func (p *Pool) Targets() []Target {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Target, 0, len(p.slaves))
	for _, s := range p.slaves {
		out = append(out, Target{ID: s.id, URL: s.url})
	}
	return out
}

// List reports every registered slave, in registration order. Failures is
// the larger of its failed health checks and failed jobs in a row.
func (p *Pool) List() []api.SlaveInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]api.SlaveInfo, 0, len(p.slaves))
	for _, s := range p.slaves {
		st := api.SlaveFree
		switch {
		case s.down:
			st = api.SlaveDown
		case s.draining:
			st = api.SlaveDraining
		case s.inflight[ClassTask] >= p.slots(s, ClassTask):
			st = api.SlaveBusy
		}
		info := api.SlaveInfo{
			ID: s.id, Webhook: s.url, Status: st, InFlight: s.busy(), Capacity: s.capacity,
			TasksDone: s.tasksDone, Failures: max(s.checkFail, s.jobFail), LatencyMS: float64(s.latency.Microseconds()) / 1000,
			LastSeen: s.lastSeen, Version: s.version, LastFailure: s.lastFailure,
		}
		if s.lastFailure != "" {
			at := s.lastFailureAt
			info.LastFailureAt = &at
		}
		out = append(out, info)
	}
	return out
}

// Classes lists the job classes.
func Classes() []Class { return []Class{ClassTask, ClassTile} }

// InFlight calls fn, for every registered slave in registration order and
// every job class, with the number of jobs of that class running on it.
func (p *Pool) InFlight(fn func(slave string, c Class, n int)) {
	type load struct {
		id string
		n  [numClasses]int
	}
	p.mu.Lock()
	loads := make([]load, 0, len(p.slaves))
	for _, s := range p.slaves {
		loads = append(loads, load{s.id, s.inflight})
	}
	p.mu.Unlock()
	for _, l := range loads {
		for c := range numClasses {
			fn(l.id, c, l.n[c])
		}
	}
}

// Get reports one slave.
func (p *Pool) Get(id string) (api.SlaveInfo, bool) {
	for _, s := range p.List() {
		if s.ID == id {
			return s, true
		}
	}
	return api.SlaveInfo{}, false
}

// permanent marks an error that another slave would return too.
type permanent struct{ err error }

func (e permanent) Error() string { return e.err.Error() }
func (e permanent) Unwrap() error { return e.err }

// Permanent wraps err so that Do returns it at once instead of retrying the
// job on another slave: the job itself is at fault (an evaluation error, a
// request the slave refuses), the answer is final, and it does not count
// against the slave.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// suspect marks a failure that may be the job's as well as the slave's.
type suspect struct{ err error }

func (e suspect) Error() string { return e.err.Error() }
func (e suspect) Unwrap() error { return e.err }

// Suspect wraps err, a failure that a slow or poisonous job would cause as
// well as a bad slave (a try's timeout, a 5xx): the job is tried on another
// slave; the failure counts against the first slave only once the job
// succeeds elsewhere, and a job failing this way on two slaves is the
// job's own fault (ErrJobFault, Permanent): it is not tried again and
// counts against neither slave.
func Suspect(err error) error { return suspect{err} }

// IsSuspect reports whether err was wrapped by Suspect.
func IsSuspect(err error) bool {
	var s suspect
	return errors.As(err, &s)
}

// Attempt is called once per try of a job, on the slave chosen for it.
// Its context ends when the job gives up (deadline, client gone), which
// cancels the call on the slave.
type Attempt func(ctx context.Context, t Target, try int) error

// Job describes how a job is placed.
type Job struct {
	Class  Class
	Policy balancer.Policy // nil: the pool's
	Key    string          // hash key (consistent-hash)
}

// Do runs a calculator job (ClassTask) with the pool's policy; see Run.
func (p *Pool) Do(ctx context.Context, key string, fn Attempt) (Target, int, error) {
	return p.Run(ctx, Job{Key: key}, fn)
}

// Run runs fn on a slave picked by the policy, waiting for a free slot of
// the job's class, and runs it again on another slave when fn fails, until
// fn succeeds, returns a Permanent error, MaxTries tries failed
// (ErrTriesExhausted), the job failed the same suspect way on two slaves
// (ErrJobFault), or ctx ends. It returns the slave of the last try and the
// number of tries.
//
// Faults are counted as Envoy's outlier detection does, but only the
// slave's: a plain error counts against the slave at once; a Suspect error
// once the job has succeeded elsewhere (or ended with no other slave to
// judge by); a Permanent one, or the job's context ending, never.
func (p *Pool) Run(ctx context.Context, j Job, fn Attempt) (Target, int, error) {
	var (
		exclude  map[string]bool
		suspects []suspectTry
		lastErr  error
		last     Target
		failed   int
	)
	// A suspect failure nobody could confirm or clear (the job ran out of
	// time or tries with a single suspect): the slave is blamed, since a
	// job that is only slow on one slave has not shown it is the job.
	defer func() { p.blame(suspects) }()
	for try := 1; ; try++ {
		if failed >= p.cfg.MaxTries {
			return last, try - 1, fmt.Errorf("%w: %d tries, last error: %w", ErrTriesExhausted, try-1, lastErr)
		}
		if try > 1 {
			p.mu.Lock()
			p.cfg.Events.Retried(j.Class)
			p.mu.Unlock()
		}
		s, err := p.acquire(ctx, j.Class, j.Policy, j.Key, exclude)
		if err != nil {
			if lastErr != nil {
				return last, try - 1, fmt.Errorf("%w after %d tries, last error: %w", err, try-1, lastErr)
			}
			return last, try - 1, fmt.Errorf("waiting for a free slave: %w", err)
		}
		last = Target{ID: s.id, URL: s.url}
		start := time.Now()
		err = fn(ctx, last, try)
		lat := time.Since(start)
		switch {
		case err == nil:
			p.release(s, j.Class, outcomeOK, lat, nil)
			return last, try, nil
		case IsPermanent(err):
			p.release(s, j.Class, outcomeOK, lat, nil)
			suspects = nil
			return last, try, err
		case ctx.Err() != nil:
			p.release(s, j.Class, outcomeCancelled, lat, nil)
			return last, try, fmt.Errorf("%w after %d tries, last error: %w", ctx.Err(), try, err)
		case IsSuspect(err):
			p.release(s, j.Class, outcomeCancelled, lat, nil)
			if len(suspects) > 0 {
				first := suspects[0].s
				if first != s {
					suspects = nil
					return last, try, Permanent(fmt.Errorf("%w (%s and %s): %w", ErrJobFault, first.id, s.id, err))
				}
				// The same slave again (no other one was free): once is
				// enough, and it counts once.
				return last, try, fmt.Errorf("%w: twice on %s, last error: %w", ErrTriesExhausted, s.id, err)
			}
			suspects = append(suspects, suspectTry{s: s, err: err})
		default:
			p.release(s, j.Class, outcomeFailed, lat, err)
		}
		lastErr = err
		if exclude[s.id] {
			// The same slave failed again because no other one could take
			// the job: that is not another slave's verdict, so it does not
			// use up a try. Wait a little (the slave's failures eject it
			// meanwhile, and a new slave may register), bounded by the
			// job's own deadline.
			p.cfg.Logger.WarnContext(ctx, "job failed again on the only slave it could get, waiting", "slave", s.id, "class", j.Class, "try", try, "err", err)
			wait := min(time.Duration(try)*50*time.Millisecond, time.Second)
			select {
			case <-ctx.Done():
				return last, try, fmt.Errorf("%w after %d tries, last error: %w", ctx.Err(), try, err)
			case <-time.After(wait):
			}
			continue
		}
		failed++
		p.cfg.Logger.WarnContext(ctx, "job failed on slave, retrying elsewhere", "slave", s.id, "class", j.Class, "try", try, "err", err)
		if exclude == nil {
			exclude = make(map[string]bool, 2)
		}
		exclude[s.id] = true
	}
}
