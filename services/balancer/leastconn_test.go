package balancer

import (
	"fmt"
	"testing"
)

func TestLeastConnPicksLeastLoaded(t *testing.T) {
	tests := []struct {
		name string
		pool []Backend
		want string
	}{
		{"single", []Backend{up("a", 3)}, "a"},
		{"first is least", []Backend{up("a", 0), up("b", 1), up("c", 2)}, "a"},
		{"last is least", []Backend{up("a", 5), up("b", 4), up("c", 1)}, "c"},
		{"middle is least", []Backend{up("a", 2), up("b", 0), up("c", 2)}, "b"},
		{"least is unhealthy", []Backend{{ID: "a"}, up("b", 3), up("c", 2)}, "c"},
		{"least is at capacity", []Backend{
			{ID: "a", Healthy: true, Capacity: 1, InFlight: 1},
			up("b", 2),
		}, "b"},
		{"capacity does not weight the comparison", []Backend{
			{ID: "big", Healthy: true, Capacity: 100, InFlight: 3},
			{ID: "small", Healthy: true, Capacity: 4, InFlight: 2},
		}, "small"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := LeastConn(&seqRand{vals: []int{0, 1, 2, 3}})
			for i := 0; i < 20; i++ {
				if got := p.Pick(tt.pool, ""); got < 0 || tt.pool[got].ID != tt.want {
					t.Fatalf("Pick = %d, want %q", got, tt.want)
				}
			}
		})
	}
}

// TestLeastConnTieBreak checks reservoir sampling with a deterministic Rand:
// with tied backends, the t-th tie replaces the choice iff IntN(t) == 0.
func TestLeastConnTieBreak(t *testing.T) {
	tests := []struct {
		name string
		pool []Backend
		rand []int // successive IntN results
		want int
	}{
		// Two idle: one IntN(2) call for b.
		{"two idle, keep first", []Backend{up("a", 0), up("b", 0)}, []int{1}, 0},
		{"two idle, take second", []Backend{up("a", 0), up("b", 0)}, []int{0}, 1},
		// Three tied: IntN(2) for b, IntN(3) for c.
		{"three tied, take b then keep", []Backend{up("a", 1), up("b", 1), up("c", 1)}, []int{0, 1}, 1},
		{"three tied, take c", []Backend{up("a", 1), up("b", 1), up("c", 1)}, []int{1, 0}, 2},
		{"three tied, keep a", []Backend{up("a", 1), up("b", 1), up("c", 1)}, []int{1, 2}, 0},
		// A less loaded backend resets the tie count.
		{"tie then lower", []Backend{up("a", 1), up("b", 1), up("c", 0)}, []int{0}, 2},
		// Unavailable backends do not take part in ties.
		{"tie across unhealthy", []Backend{up("a", 0), {ID: "b"}, up("c", 0)}, []int{0}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LeastConn(&seqRand{vals: tt.rand}).Pick(tt.pool, ""); got != tt.want {
				t.Errorf("Pick = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLeastConnSpreadsIdle(t *testing.T) {
	pool := []Backend{up("a", 0), up("b", 0)}

	t.Run("fake rand alternates", func(t *testing.T) {
		p := LeastConn(&seqRand{vals: []int{0, 1}})
		var seen [2]int
		for i := 0; i < 10; i++ {
			seen[p.Pick(pool, "")]++
		}
		if seen != [2]int{5, 5} {
			t.Errorf("picks = %v, want [5 5]", seen)
		}
	})

	for _, n := range []int{2, 3, 8} {
		t.Run(fmt.Sprintf("real rand, %d idle", n), func(t *testing.T) {
			pool := make([]Backend, n)
			for i := range pool {
				pool[i] = up(fmt.Sprintf("s%d", i), 0)
			}
			const picks = 10000
			counts := make([]int, n)
			p := LeastConn(nil)
			for i := 0; i < picks; i++ {
				counts[p.Pick(pool, "")]++
			}
			even := picks / n
			for i, c := range counts {
				if c < even*8/10 || c > even*12/10 {
					t.Errorf("backend %d got %d of %d picks, want within 20%% of %d (all: %v)", i, c, picks, even, counts)
				}
			}
		})
	}
}
