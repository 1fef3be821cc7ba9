package balancer

import (
	"fmt"
	"hash/fnv"
	"slices"
	"testing"
)

func hashPool(ids ...string) []Backend {
	pool := make([]Backend, len(ids))
	for i, id := range ids {
		pool[i] = up(id, 0)
	}
	return pool
}

func testKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("job-%d", i)
	}
	return keys
}

// owners maps every key to the ID of the backend p picks for it.
func owners(t *testing.T, p Policy, pool []Backend, keys []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		i := p.Pick(pool, k)
		if i < 0 {
			t.Fatalf("Pick(%q) = -1 with available backends %v", k, ids(pool))
		}
		m[k] = pool[i].ID
	}
	return m
}

func TestHashIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", "slave-1#0", "job-12345"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := hashString(s), mix64(h.Sum64()); got != want {
			t.Errorf("hashString(%q) = %x, want mix64(fnv64a) = %x", s, got, want)
		}
		if hashBytes([]byte(s)) != hashString(s) {
			t.Errorf("hashBytes(%q) != hashString", s)
		}
	}
	// Pinned values: the mapping must never change across releases, or a
	// master upgrade would reshuffle every key.
	if got, want := hashString("job-1"), uint64(0x8ad1645488186a15); got != want {
		t.Errorf("hashString(\"job-1\") = %#x, want %#x", got, want)
	}
}

func TestConsistentHashSameKeySameBackend(t *testing.T) {
	pool := hashPool("s1", "s2", "s3")
	keys := testKeys(1000)
	p := ConsistentHash(100)
	first := owners(t, p, pool, keys)
	for round := 0; round < 3; round++ {
		again := owners(t, p, pool, keys)
		for _, k := range keys {
			if again[k] != first[k] {
				t.Fatalf("round %d: key %q moved from %s to %s", round, k, first[k], again[k])
			}
		}
	}
	t.Run("another instance agrees (stable across restarts)", func(t *testing.T) {
		other := owners(t, ConsistentHash(100), pool, keys)
		for _, k := range keys {
			if other[k] != first[k] {
				t.Fatalf("key %q: %s on a fresh policy, %s before", k, other[k], first[k])
			}
		}
	})
	t.Run("pool order does not matter", func(t *testing.T) {
		for _, order := range [][]string{{"s3", "s2", "s1"}, {"s2", "s3", "s1"}} {
			for _, fresh := range []bool{false, true} {
				q := p
				if fresh {
					q = ConsistentHash(100)
				}
				got := owners(t, q, hashPool(order...), keys)
				for _, k := range keys {
					if got[k] != first[k] {
						t.Fatalf("order %v fresh=%v: key %q went to %s, want %s", order, fresh, k, got[k], first[k])
					}
				}
			}
		}
	})
	t.Run("load does not matter", func(t *testing.T) {
		loaded := hashPool("s1", "s2", "s3")
		loaded[0].InFlight, loaded[1].InFlight = 50, 7
		got := owners(t, p, loaded, keys)
		for _, k := range keys {
			if got[k] != first[k] {
				t.Fatalf("key %q moved from %s to %s when only load changed", k, first[k], got[k])
			}
		}
	})
}

func TestConsistentHashDistribution(t *testing.T) {
	tests := []struct {
		name string
		ids  []string
	}{
		{"3 slaves", []string{"slave-1", "slave-2", "slave-3"}},
		{"3 addresses", []string{"10.0.0.1:8081", "10.0.0.2:8081", "10.0.0.3:8081"}},
		{"3 uuids", []string{"3f1c9a0e", "7b22d410", "c0ffee42"}},
	}
	const n = 10000
	keys := testKeys(n)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			counts := map[string]int{}
			for _, id := range owners(t, ConsistentHash(100), hashPool(tt.ids...), keys) {
				counts[id]++
			}
			even := n / len(tt.ids)
			for _, id := range tt.ids {
				if c := counts[id]; c < even*3/4 || c > even*5/4 {
					t.Errorf("%s owns %d of %d keys, want within ±25%% of %d (%v)", id, c, n, even, counts)
				}
			}
		})
	}
}

func TestConsistentHashMembershipChange(t *testing.T) {
	keys := testKeys(10000)
	p := ConsistentHash(100)
	three := hashPool("s1", "s2", "s3")
	four := hashPool("s1", "s2", "s3", "s4")

	before := owners(t, p, three, keys)
	after := owners(t, p, four, keys) // same policy: the ring is rebuilt
	t.Run("adding a 4th moves about a quarter, all to it", func(t *testing.T) {
		moved := 0
		for _, k := range keys {
			if after[k] != before[k] {
				moved++
				if after[k] != "s4" {
					t.Fatalf("key %q moved %s -> %s, want moves only to the new s4", k, before[k], after[k])
				}
			}
		}
		if frac := float64(moved) / float64(len(keys)); frac < 0.10 || frac > 0.40 {
			t.Errorf("adding a backend moved %.1f%% of keys, want 10%%-40%%", 100*frac)
		}
	})
	t.Run("removing one moves only its keys", func(t *testing.T) {
		for _, removed := range []string{"s1", "s2", "s3", "s4"} {
			var rest []Backend
			for _, b := range four {
				if b.ID != removed {
					rest = append(rest, b)
				}
			}
			p.Pick(four, "x") // back to four, so the removal rebuilds the ring
			got := owners(t, p, rest, keys)
			moved := 0
			for _, k := range keys {
				if after[k] != removed && got[k] != after[k] {
					t.Fatalf("removing %s moved key %q %s -> %s, which it did not own", removed, k, after[k], got[k])
				}
				if after[k] == removed {
					moved++
				}
			}
			if moved == 0 {
				t.Errorf("%s owned no keys", removed)
			}
		}
	})
}

func TestConsistentHashUnavailableOwner(t *testing.T) {
	keys := testKeys(2000)
	for _, eject := range []struct {
		name string
		set  func(*Backend)
	}{
		{"unhealthy", func(b *Backend) { b.Healthy = false }},
		{"at capacity", func(b *Backend) { b.Capacity, b.InFlight = 2, 2 }},
	} {
		t.Run(eject.name, func(t *testing.T) {
			p := ConsistentHash(100)
			pool := hashPool("s1", "s2", "s3", "s4")
			home := owners(t, p, pool, keys)
			r0 := p.(*consistentHash).ring.Load()

			pool[1] = up("s2", 0)
			eject.set(&pool[1])
			away := owners(t, p, pool, keys)
			moved := 0
			for _, k := range keys {
				switch {
				case home[k] == "s2" && away[k] == "s2":
					t.Fatalf("key %q still on unavailable s2", k)
				case home[k] == "s2":
					moved++
				case away[k] != home[k]:
					t.Fatalf("key %q moved %s -> %s though its owner is available", k, home[k], away[k])
				}
			}
			if moved == 0 {
				t.Fatal("s2 owned no keys")
			}
			// Its keys spread over the others rather than all landing on one.
			spread := map[string]bool{}
			for _, k := range keys {
				if home[k] == "s2" {
					spread[away[k]] = true
				}
			}
			if len(spread) < 2 {
				t.Errorf("s2's keys all went to %v, want them spread clockwise over several backends", spread)
			}

			pool[1] = up("s2", 0)
			back := owners(t, p, pool, keys)
			for _, k := range keys {
				if back[k] != home[k] {
					t.Fatalf("key %q on %s after s2 recovered, want %s", k, back[k], home[k])
				}
			}
			if p.(*consistentHash).ring.Load() != r0 {
				t.Error("ring rebuilt although only availability changed")
			}
		})
	}

	t.Run("walks past several unavailable owners", func(t *testing.T) {
		p := ConsistentHash(100)
		pool := hashPool("s1", "s2", "s3", "s4", "s5")
		for i := 0; i < 4; i++ {
			pool[i].Healthy = false
		}
		for _, k := range keys[:200] {
			if got := p.Pick(pool, k); got != 4 {
				t.Fatalf("Pick(%q) = %d, want the only available 4", k, got)
			}
		}
	})
}

func TestConsistentHashRingCache(t *testing.T) {
	p := ConsistentHash(10).(*consistentHash)
	pool := hashPool("a", "b", "c")
	p.Pick(pool, "k")
	r0 := p.ring.Load()
	if r0 == nil || len(r0.points) != 30 {
		t.Fatalf("ring after first pick: %+v, want 30 points", r0)
	}
	steps := []struct {
		name    string
		pool    []Backend
		rebuilt bool
	}{
		{"same pool", pool, false},
		{"reordered", hashPool("c", "a", "b"), false},
		{"health and load changed", []Backend{{ID: "a"}, up("b", 9), {ID: "c", Healthy: true, Capacity: 1, InFlight: 1}}, false},
		{"member added", hashPool("a", "b", "c", "d"), true},
		{"member replaced", hashPool("a", "b", "c", "e"), true},
		{"member removed", hashPool("a", "b", "c"), true},
	}
	prev := r0
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			p.Pick(st.pool, "k")
			cur := p.ring.Load()
			if (cur != prev) != st.rebuilt {
				t.Errorf("rebuilt = %v, want %v", cur != prev, st.rebuilt)
			}
			if got := len(cur.ids); got != len(st.pool) {
				t.Errorf("ring has %d IDs, want %d", got, len(st.pool))
			}
			prev = cur
		})
	}
}

func TestConsistentHashDuplicateIDs(t *testing.T) {
	p := ConsistentHash(50)
	pool := []Backend{{ID: "a"}, up("b", 0), up("a", 0)}
	for _, k := range testKeys(200) {
		got := p.Pick(pool, k)
		if got < 0 || !pool[got].Available() {
			t.Fatalf("Pick(%q) = %d, want an available backend", k, got)
		}
	}
	r0 := p.(*consistentHash).ring.Load()
	p.Pick(pool, "again")
	if p.(*consistentHash).ring.Load() != r0 {
		t.Error("a pool with duplicate IDs rebuilds the ring on every pick")
	}
}

func TestConsistentHashEmptyKeyIsLeastConn(t *testing.T) {
	p := ConsistentHash(100)
	pool := []Backend{up("a", 4), up("b", 1), {ID: "c"}, up("d", 2)}
	for i := 0; i < 50; i++ {
		if got := p.Pick(pool, ""); got != 1 {
			t.Fatalf("Pick(\"\") = %d, want the least loaded 1", got)
		}
	}
	idle := hashPool("a", "b")
	var seen [2]int
	for i := 0; i < 1000; i++ {
		seen[p.Pick(idle, "")]++
	}
	if seen[0] < 400 || seen[1] < 400 {
		t.Errorf("empty key on two idle backends: %v, want both picked about evenly", seen)
	}
}

func TestConsistentHashReplicas(t *testing.T) {
	for _, tt := range []struct{ in, want int }{{0, DefaultReplicas}, {-5, DefaultReplicas}, {1, 1}, {160, 160}} {
		t.Run(fmt.Sprint(tt.in), func(t *testing.T) {
			p := ConsistentHash(tt.in).(*consistentHash)
			p.Pick(hashPool("a", "b"), "k")
			if got := len(p.ring.Load().points); got != 2*tt.want {
				t.Errorf("ring has %d points, want %d", got, 2*tt.want)
			}
			if !slices.IsSorted(p.ring.Load().points) {
				t.Error("ring points not sorted")
			}
		})
	}
}
