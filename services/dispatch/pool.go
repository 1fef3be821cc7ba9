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

// MaxCapacity bounds the capacity a slave may claim.
const MaxCapacity = 4096

// Config tunes a Pool.
type Config struct {
	// Policy picks a slave for each job (default least-conn).
	Policy balancer.Policy
	// MaxQueue bounds the jobs waiting for a free slave (default 10000).
	MaxQueue int
	// FailThreshold is how many failures in a row eject a slave (default 3).
	FailThreshold int
	// EjectBase and EjectMax bound the re-admission backoff (1s, 30s).
	EjectBase, EjectMax time.Duration
	// ForgetAfter removes a slave that stayed down this long (10m).
	ForgetAfter time.Duration
	// DefaultCapacity is used when a slave reports none (default 2).
	DefaultCapacity int
	Logger          *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Target is the address of the slave a job attempt runs on.
type Target struct {
	ID  string
	URL string
}

type slave struct {
	id        string
	url       string
	version   string
	capacity  int
	inflight  int
	tasksDone uint64
	failures  int // in a row
	down      bool
	draining  bool
	downSince time.Time
	until     time.Time // ejected until
	backoff   time.Duration
	upSince   time.Time
	lastSeen  time.Time
	latency   time.Duration // EWMA
}

type waiter struct {
	ch      chan *slave
	policy  balancer.Policy
	key     string
	exclude string
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
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

// Register adds a slave or refreshes an existing one with the same id or
// URL. It returns the slave's id and whether it is new.
func (p *Pool) Register(url, id string, capacity int, version string) (string, bool) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byURL[url]
	if s == nil && id != "" {
		s = p.byID[id]
	}
	if s != nil {
		if s.url != url {
			delete(p.byURL, s.url)
			s.url = url
			p.byURL[url] = s
		}
		// A refresh keeps what it does not restate.
		if capacity > 0 {
			s.capacity = capacity
		}
		if version != "" {
			s.version = version
		}
		s.lastSeen = now
		s.draining = false
		if s.down {
			// A slave that registers again has just started: give it a chance.
			s.down, s.failures, s.upSince = false, 0, now
		}
		p.notifyLocked()
		return s.id, false
	}
	if id == "" || p.byID[id] != nil {
		id = NewSlaveID()
	}
	delete(p.tombstones, id)
	if capacity <= 0 {
		capacity = p.cfg.DefaultCapacity
	}
	s = &slave{id: id, url: url, version: version, capacity: capacity, lastSeen: now, upSince: now, backoff: p.cfg.EjectBase}
	p.slaves = append(p.slaves, s)
	p.byID[id] = s
	p.byURL[url] = s
	p.cfg.Logger.Info("slave registered", "slave", id, "url", url, "capacity", capacity)
	p.notifyLocked()
	return id, true
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
	if s.inflight == 0 {
		p.removeLocked(s, "drained", true)
		return true, true
	}
	p.cfg.Logger.Info("slave draining", "slave", id, "in_flight", s.inflight)
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

// pickLocked chooses a slave with free capacity, avoiding exclude when
// another one is available.
func (p *Pool) pickLocked(pol balancer.Policy, key, exclude string) *slave {
	if pol == nil {
		pol = p.cfg.Policy
	}
	p.cands = p.cands[:0]
	p.candSlaves = p.candSlaves[:0]
	excluded := false
	for _, s := range p.slaves {
		healthy := !s.down && !s.draining
		if healthy && s.id == exclude {
			healthy, excluded = false, true
		}
		p.cands = append(p.cands, balancer.Backend{ID: s.id, InFlight: s.inflight, Capacity: s.capacity, Latency: s.latency, Healthy: healthy})
		p.candSlaves = append(p.candSlaves, s)
	}
	i := pol.Pick(p.cands, key)
	if i < 0 && excluded {
		for j := range p.cands {
			if p.cands[j].ID == exclude {
				p.cands[j].Healthy = true
			}
		}
		i = pol.Pick(p.cands, key)
	}
	if i < 0 {
		return nil
	}
	s := p.candSlaves[i]
	s.inflight++
	return s
}

func (p *Pool) serveWaitersLocked() {
	for len(p.waiters) > 0 {
		w := p.waiters[0]
		s := p.pickLocked(w.policy, w.key, w.exclude)
		if s == nil {
			return
		}
		p.waiters[0] = nil
		p.waiters = p.waiters[1:]
		w.ch <- s
	}
}

// acquire returns a slave with a reserved slot, waiting in the FIFO queue
// until one is free or ctx ends.
func (p *Pool) acquire(ctx context.Context, pol balancer.Policy, key, exclude string) (*slave, error) {
	p.mu.Lock()
	if len(p.waiters) == 0 {
		if s := p.pickLocked(pol, key, exclude); s != nil {
			p.mu.Unlock()
			return s, nil
		}
	}
	w := &waiter{ch: make(chan *slave, 1), policy: pol, key: key, exclude: exclude}
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
	p.release(s, outcomeCancelled, 0)
	return nil, ctx.Err()
}

type outcome int

const (
	outcomeOK outcome = iota
	outcomeFailed
	outcomeCancelled
)

func (p *Pool) release(s *slave, o outcome, latency time.Duration) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s.inflight--
	switch o {
	case outcomeOK:
		s.tasksDone++
		s.failures = 0
		s.lastSeen = now
		if s.latency == 0 {
			s.latency = latency
		} else {
			s.latency = (s.latency*7 + latency*3) / 10
		}
	case outcomeFailed:
		p.failLocked(s, now)
	}
	if s.draining && s.inflight == 0 {
		p.removeLocked(s, "drained", true)
		return
	}
	p.serveWaitersLocked()
}

func (p *Pool) failLocked(s *slave, now time.Time) {
	s.failures++
	if s.down || s.failures < p.cfg.FailThreshold {
		return
	}
	s.down = true
	s.downSince = now
	s.until = now.Add(s.backoff)
	p.cfg.Logger.Warn("slave ejected", "slave", s.id, "failures", s.failures, "retry_in", s.backoff)
	s.backoff = min(s.backoff*2, p.cfg.EjectMax)
	p.notifyLocked()
}

// CheckResult records the outcome of an active health check of a slave.
func (p *Pool) CheckResult(id string, ok bool, h api.Health) {
	now := p.cfg.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.byID[id]
	if s == nil {
		return
	}
	if !ok {
		p.failLocked(s, now)
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
	if s.down {
		if now.Before(s.until) {
			return
		}
		s.down, s.failures, s.upSince = false, 0, now
		p.cfg.Logger.Info("slave re-admitted", "slave", s.id)
		p.notifyLocked()
		return
	}
	s.failures = 0
	if now.Sub(s.upSince) > p.cfg.EjectMax {
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

// List reports every registered slave, in registration order.
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
		case s.inflight >= s.capacity:
			st = api.SlaveBusy
		}
		out = append(out, api.SlaveInfo{
			ID: s.id, Webhook: s.url, Status: st, InFlight: s.inflight, Capacity: s.capacity,
			TasksDone: s.tasksDone, Failures: s.failures, LatencyMS: float64(s.latency.Microseconds()) / 1000,
			LastSeen: s.lastSeen, Version: s.version,
		})
	}
	return out
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
// job on another slave: the slave did its work and the answer is final.
func Permanent(err error) error { return permanent{err} }

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

// Attempt is called once per try of a job, on the slave chosen for it.
type Attempt func(ctx context.Context, t Target, try int) error

// Do runs fn on a slave picked by the policy, waiting for a free one, and
// runs it again on another slave when fn fails, until fn succeeds, returns
// a Permanent error, or ctx ends. It returns the slave of the last try and
// the number of tries.
func (p *Pool) Do(ctx context.Context, key string, fn Attempt) (Target, int, error) {
	return p.DoWith(ctx, nil, key, fn)
}

// DoWith is Do with a balancing policy of the caller's instead of the
// pool's (nil: the pool's), e.g. a render that asks for round-robin.
func (p *Pool) DoWith(ctx context.Context, pol balancer.Policy, key string, fn Attempt) (Target, int, error) {
	var (
		exclude string
		lastErr error
		last    Target
	)
	for try := 1; ; try++ {
		s, err := p.acquire(ctx, pol, key, exclude)
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
			p.release(s, outcomeOK, lat)
			return last, try, nil
		case IsPermanent(err):
			p.release(s, outcomeOK, lat)
			return last, try, err
		case ctx.Err() != nil:
			p.release(s, outcomeCancelled, lat)
			return last, try, fmt.Errorf("%w after %d tries, last error: %w", ctx.Err(), try, err)
		default:
			p.release(s, outcomeFailed, lat)
			p.cfg.Logger.WarnContext(ctx, "job failed on slave, retrying elsewhere", "slave", s.id, "try", try, "err", err)
			lastErr, exclude = err, s.id
		}
	}
}
