package balancer

import (
	"slices"
	"testing"
)

func TestRoundRobinOrder(t *testing.T) {
	full := Backend{ID: "b", Healthy: true, Capacity: 1, InFlight: 1}
	tests := []struct {
		name string
		pool []Backend
		want []string
	}{
		{"three healthy rotate in order", []Backend{up("a", 0), up("b", 9), up("c", 0)},
			[]string{"a", "b", "c", "a", "b", "c", "a", "b", "c"}},
		{"unhealthy middle is skipped", []Backend{up("a", 0), {ID: "b"}, up("c", 0)},
			[]string{"a", "c", "a", "c", "a", "c"}},
		{"at-capacity middle is skipped", []Backend{up("a", 0), full, up("c", 0)},
			[]string{"a", "c", "a", "c", "a", "c"}},
		{"unhealthy first is skipped", []Backend{{ID: "a"}, up("b", 0), up("c", 0), up("d", 0)},
			[]string{"b", "c", "d", "b", "c", "d"}},
		{"single", []Backend{up("a", 0)}, []string{"a", "a", "a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := RoundRobin()
			var got []string
			for range tt.want {
				got = append(got, tt.pool[p.Pick(tt.pool, "")].ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("picks = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRoundRobinFairWithGaps checks that an unavailable backend's turn is
// not inherited by its neighbour: every available backend gets the same
// share, however the unavailable ones are placed.
func TestRoundRobinFairWithGaps(t *testing.T) {
	tests := []struct {
		name string
		up   []bool
	}{
		{"one down of 3", []bool{true, false, true}},
		{"run of down", []bool{true, false, false, false, true, true}},
		{"down at both ends", []bool{false, true, true, true, false}},
		{"alternating", []bool{true, false, true, false, true, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := make([]Backend, len(tt.up))
			k := 0
			for i, u := range tt.up {
				pool[i] = Backend{ID: string(rune('a' + i)), Healthy: u}
				if u {
					k++
				}
			}
			p := RoundRobin()
			counts := make([]int, len(pool))
			const rounds = 100
			for i := 0; i < rounds*k; i++ {
				counts[p.Pick(pool, "")]++
			}
			for i, c := range counts {
				want := 0
				if tt.up[i] {
					want = rounds
				}
				if c != want {
					t.Errorf("backend %d picked %d times, want %d (all: %v)", i, c, want, counts)
				}
			}
		})
	}
}

// TestRoundRobinRecovers checks that after a backend comes back it is
// picked again and the rotation stays fair.
func TestRoundRobinRecovers(t *testing.T) {
	pool := []Backend{up("a", 0), {ID: "b"}, up("c", 0)}
	p := RoundRobin()
	for i := 0; i < 5; i++ {
		if got := pool[p.Pick(pool, "")].ID; got == "b" {
			t.Fatalf("picked unhealthy b")
		}
	}
	pool[1].Healthy = true
	counts := map[string]int{}
	for i := 0; i < 30; i++ {
		counts[pool[p.Pick(pool, "")].ID]++
	}
	want := map[string]int{"a": 10, "b": 10, "c": 10}
	for id, n := range want {
		if counts[id] != n {
			t.Errorf("after recovery: %v, want %v", counts, want)
			break
		}
	}
}
