package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Default is the name of the policy used when none is configured.
const Default = "least-conn"

// Policy names accepted by New.
const (
	nameLeastConn      = "least-conn"
	nameRoundRobin     = "round-robin"
	nameP2C            = "p2c"
	nameConsistentHash = "consistent-hash"
)

// DefaultReplicas is the number of virtual nodes per backend that
// ConsistentHash uses when given replicas <= 0, and that New uses.
const DefaultReplicas = 100

// ErrNoBackend is the error callers return when Pick reports -1, so that the
// "no slave can take this job" case maps to 503 in one place.
var ErrNoBackend = errors.New("balancer: no available backend")

// Backend is a snapshot of one slave as the policy sees it.
type Backend struct {
	ID       string        // stable, unique slave ID; consistent-hash hashes it
	InFlight int           // tasks currently running on it
	Capacity int           // max tasks in flight; <= 0 means unlimited
	Latency  time.Duration // EWMA of recent task latency; <= 0 means unknown
	Healthy  bool          // false when ejected, down, or draining
}

// Available reports whether the backend may be given one more job: it is
// healthy and, when it has a capacity, below it.
func (b Backend) Available() bool {
	return b.Healthy && (b.Capacity <= 0 || b.InFlight < b.Capacity)
}

// Policy picks the backend for one job.
//
// Pick returns the index into pool of the chosen backend, or -1 when no
// backend in pool is available. It never picks an unavailable backend, never
// blocks, does not modify pool, and is safe for concurrent use (pool itself
// must not be modified during the call). key is the job's hash key; only
// consistent-hash uses it, and it may be "".
type Policy interface {
	Pick(pool []Backend, key string) int
}

// Rand is the source of randomness injected into the randomized policies, so
// tests can make them deterministic. IntN returns a number in [0, n) for
// n > 0. An implementation shared by a policy used from several goroutines
// must be safe for concurrent use.
type Rand interface {
	IntN(n int) int
}

// globalRand is the default Rand: math/rand/v2's top-level functions, which
// are safe for concurrent use and do not allocate.
type globalRand struct{}

func (globalRand) IntN(n int) int { return rand.IntN(n) }

func orDefault(r Rand) Rand {
	if r == nil {
		return globalRand{}
	}
	return r
}

// intn calls r.IntN and clamps a misbehaving result into [0, n), so that a
// broken Rand cannot make a policy pick outside the available set.
func intn(r Rand, n int) int {
	x := r.IntN(n)
	if x < 0 || x >= n {
		return 0
	}
	return x
}

var names = []string{nameLeastConn, nameRoundRobin, nameP2C, nameConsistentHash}

// Names returns the policy names New accepts, the default first.
func Names() []string {
	return append([]string(nil), names...)
}

// New returns a fresh policy by name, with default randomness and, for
// consistent-hash, DefaultReplicas virtual nodes per backend. The name is
// matched case-insensitively after trimming spaces; "" means Default. An
// unknown name yields an error listing the valid ones.
func New(name string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "", nameLeastConn:
		return LeastConn(nil), nil
	case nameRoundRobin:
		return RoundRobin(), nil
	case nameP2C:
		return P2C(nil), nil
	case nameConsistentHash:
		return ConsistentHash(DefaultReplicas), nil
	}
	return nil, fmt.Errorf("balancer: unknown policy %q (valid: %s)", name, strings.Join(names, ", "))
}
