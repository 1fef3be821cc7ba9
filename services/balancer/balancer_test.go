package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// seqRand is a deterministic Rand: it returns its values in turn, each
// reduced modulo n. It is not safe for concurrent use.
type seqRand struct {
	vals []int
	i    int
}

func (s *seqRand) IntN(n int) int {
	v := s.vals[s.i%len(s.vals)]
	s.i++
	return v % n
}

// allPolicies returns a fresh instance of every policy, by name.
func allPolicies(t testing.TB) map[string]Policy {
	t.Helper()
	ps := make(map[string]Policy)
	for _, name := range Names() {
		p, err := New(name)
		if err != nil {
			t.Fatalf("New(%q): %v", name, err)
		}
		ps[name] = p
	}
	return ps
}

func up(id string, inFlight int) Backend {
	return Backend{ID: id, InFlight: inFlight, Healthy: true}
}

func ids(pool []Backend) []string {
	out := make([]string, len(pool))
	for i, b := range pool {
		out[i] = b.ID
	}
	return out
}

func TestAvailable(t *testing.T) {
	tests := []struct {
		name string
		b    Backend
		want bool
	}{
		{"healthy unlimited", Backend{Healthy: true, InFlight: 1000}, true},
		{"healthy negative capacity is unlimited", Backend{Healthy: true, Capacity: -1, InFlight: 5}, true},
		{"healthy below capacity", Backend{Healthy: true, Capacity: 2, InFlight: 1}, true},
		{"healthy at capacity", Backend{Healthy: true, Capacity: 2, InFlight: 2}, false},
		{"healthy over capacity", Backend{Healthy: true, Capacity: 2, InFlight: 3}, false},
		{"unhealthy idle", Backend{Healthy: false}, false},
		{"unhealthy below capacity", Backend{Healthy: false, Capacity: 4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Available(); got != tt.want {
				t.Errorf("%+v.Available() = %v, want %v", tt.b, got, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		want    string // type of the policy, by the name of its constructor
		wantErr bool
	}{
		{"", "leastConn", false},
		{"least-conn", "leastConn", false},
		{" Least-Conn ", "leastConn", false},
		{"round-robin", "roundRobin", false},
		{"p2c", "p2c", false},
		{"consistent-hash", "consistentHash", false},
		{"random", "", true},
		{"least_conn", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.name)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New(%q) = %T, want error", tt.name, p)
				}
				for _, n := range Names() {
					if !strings.Contains(err.Error(), n) {
						t.Errorf("error %q does not list valid name %q", err, n)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.name, err)
			}
			if got := strings.TrimPrefix(fmt.Sprintf("%T", p), "*"); got != "balancer."+tt.want {
				t.Errorf("New(%q) = %s, want balancer.%s", tt.name, got, tt.want)
			}
		})
	}
}

func TestNames(t *testing.T) {
	got := Names()
	want := []string{"least-conn", "round-robin", "p2c", "consistent-hash"}
	if !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	if got[0] != Default {
		t.Errorf("Names()[0] = %q, want Default %q", got[0], Default)
	}
	got[0] = "mutated"
	if Names()[0] != Default {
		t.Error("Names returns a slice aliasing package state")
	}
}

func TestErrNoBackend(t *testing.T) {
	err := fmt.Errorf("dispatch task 42: %w", ErrNoBackend)
	if !errors.Is(err, ErrNoBackend) {
		t.Fatal("wrapped ErrNoBackend not recognised by errors.Is")
	}
}

// TestNoneAvailable checks every policy returns -1 when nothing can be picked.
func TestNoneAvailable(t *testing.T) {
	pools := []struct {
		name string
		pool []Backend
	}{
		{"nil", nil},
		{"empty", []Backend{}},
		{"one unhealthy", []Backend{{ID: "a"}}},
		{"all unhealthy", []Backend{{ID: "a"}, {ID: "b"}, {ID: "c"}}},
		{"all at capacity", []Backend{
			{ID: "a", Healthy: true, Capacity: 1, InFlight: 1},
			{ID: "b", Healthy: true, Capacity: 2, InFlight: 2},
		}},
		{"mixed unhealthy and full", []Backend{
			{ID: "a", Healthy: false},
			{ID: "b", Healthy: true, Capacity: 3, InFlight: 4},
		}},
	}
	for name, p := range allPolicies(t) {
		for _, tt := range pools {
			for _, key := range []string{"", "job-1"} {
				t.Run(fmt.Sprintf("%s/%s/key=%q", name, tt.name, key), func(t *testing.T) {
					if got := p.Pick(tt.pool, key); got != -1 {
						t.Errorf("Pick = %d, want -1", got)
					}
				})
			}
		}
	}
}

// TestOnlyOneAvailable checks every policy finds the single available
// backend wherever it sits among unavailable ones.
func TestOnlyOneAvailable(t *testing.T) {
	for name, p := range allPolicies(t) {
		for n := 1; n <= 5; n++ {
			for want := 0; want < n; want++ {
				pool := make([]Backend, n)
				for i := range pool {
					pool[i] = Backend{ID: fmt.Sprintf("s%d", i), Healthy: true, Capacity: 1, InFlight: 1}
				}
				pool[want].InFlight = 0
				t.Run(fmt.Sprintf("%s/n=%d/at=%d", name, n, want), func(t *testing.T) {
					for k := 0; k < 10; k++ {
						key := fmt.Sprintf("key-%d", k)
						if k == 0 {
							key = ""
						}
						if got := p.Pick(pool, key); got != want {
							t.Fatalf("Pick(key %q) = %d, want %d", key, got, want)
						}
					}
				})
			}
		}
	}
}

// TestPropertyNeverUnavailable picks from many random pools and checks that
// every policy returns -1 exactly when nothing is available and otherwise an
// in-range, available backend.
func TestPropertyNeverUnavailable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomPool := func() []Backend {
		n := rng.IntN(12)
		pool := make([]Backend, n)
		for i := range pool {
			pool[i] = Backend{
				ID:       fmt.Sprintf("slave-%d", rng.IntN(20)), // duplicates allowed
				InFlight: rng.IntN(6) - 1,
				Capacity: rng.IntN(5) - 1,
				Latency:  time.Duration(rng.IntN(5)-1) * time.Millisecond,
				Healthy:  rng.IntN(4) != 0,
			}
		}
		return pool
	}
	for name, p := range allPolicies(t) {
		t.Run(name, func(t *testing.T) {
			for iter := 0; iter < 5000; iter++ {
				pool := randomPool()
				key := ""
				if rng.IntN(3) != 0 {
					key = fmt.Sprintf("k%d", rng.IntN(1000))
				}
				got := p.Pick(pool, key)
				if !slices.ContainsFunc(pool, Backend.Available) {
					if got != -1 {
						t.Fatalf("pool %+v: Pick = %d, want -1", pool, got)
					}
					continue
				}
				if got < 0 || got >= len(pool) {
					t.Fatalf("pool %+v: Pick = %d, want an index of an available backend", pool, got)
				}
				if !pool[got].Available() {
					t.Fatalf("pool %+v: Pick = %d, an unavailable backend %+v", pool, got, pool[got])
				}
			}
		})
	}
}

// badRand returns out-of-range values; policies must still stay in bounds.
type badRand struct{ v int }

func (b badRand) IntN(int) int { return b.v }

func TestMisbehavingRand(t *testing.T) {
	pool := []Backend{up("a", 0), {ID: "b"}, up("c", 0), up("d", 0)}
	for _, v := range []int{-1, 4, 1 << 40} {
		for name, p := range map[string]Policy{"least-conn": LeastConn(badRand{v}), "p2c": P2C(badRand{v})} {
			t.Run(fmt.Sprintf("%s/%d", name, v), func(t *testing.T) {
				got := p.Pick(pool, "")
				if got < 0 || !pool[got].Available() {
					t.Fatalf("Pick = %d, want an available backend", got)
				}
			})
		}
	}
}

// TestConcurrentPick runs many goroutines picking from shared pools; run it
// with -race.
func TestConcurrentPick(t *testing.T) {
	const goroutines, picks = 32, 2000
	poolA := []Backend{up("a", 0), up("b", 1), {ID: "c"}, {ID: "d", Healthy: true, Capacity: 1, InFlight: 1}, up("e", 2)}
	poolA[0].Latency, poolA[1].Latency = 3*time.Millisecond, time.Millisecond
	poolB := append(slices.Clone(poolA), up("f", 0)) // a different ID set: forces ring swaps
	for name, p := range allPolicies(t) {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan string, goroutines)
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pool := poolA
					if g%4 == 0 {
						pool = poolB
					}
					for i := 0; i < picks; i++ {
						key := ""
						if i%2 == 0 {
							key = fmt.Sprintf("job-%d", i)
						}
						got := p.Pick(pool, key)
						if got < 0 || !pool[got].Available() {
							errs <- fmt.Sprintf("Pick = %d from %v", got, ids(pool))
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

// TestPickDoesNotAllocate asserts the steady-state Pick allocates nothing.
func TestPickDoesNotAllocate(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation may allocate")
	}
	for _, n := range []int{2, 16} {
		pool := benchPool(n)
		shuffled := slices.Clone(pool)
		slices.Reverse(shuffled)
		for name, p := range allPolicies(t) {
			for _, pp := range []struct {
				name string
				pool []Backend
			}{{"ordered", pool}, {"reordered", shuffled}} {
				t.Run(fmt.Sprintf("%s/n=%d/%s", name, n, pp.name), func(t *testing.T) {
					p.Pick(pp.pool, "warm-up") // builds the consistent-hash ring
					i := 0
					allocs := testing.AllocsPerRun(1000, func() {
						p.Pick(pp.pool, benchKeys[i%len(benchKeys)])
						i++
					})
					if allocs != 0 {
						t.Errorf("Pick allocates %.1f times per call, want 0", allocs)
					}
				})
			}
		}
	}
}
