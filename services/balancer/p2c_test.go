package balancer

import (
	"math"
	"testing"
	"time"
)

func withLatency(id string, inFlight int, l time.Duration) Backend {
	return Backend{ID: id, InFlight: inFlight, Latency: l, Healthy: true}
}

func TestP2CPicksLowerScore(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		pool []Backend
		rand []int // the two draws: IntN(k), then IntN(k-1) (skipping the first)
		want string
	}{
		{"lower latency wins", []Backend{withLatency("a", 0, 10*ms), withLatency("b", 0, 5*ms)}, []int{0, 0}, "b"},
		{"lower latency wins, other draw order", []Backend{withLatency("a", 0, 10*ms), withLatency("b", 0, 5*ms)}, []int{1, 0}, "b"},
		{"load counts: 10ms idle beats 4ms with 2 in flight", []Backend{withLatency("a", 0, 10*ms), withLatency("b", 2, 4*ms)}, []int{1, 0}, "a"},
		{"load counts: 10ms with 1 beats 25ms idle", []Backend{withLatency("a", 1, 10*ms), withLatency("b", 0, 25*ms)}, []int{1, 0}, "a"},
		{"tie goes to first draw (b)", []Backend{withLatency("a", 1, 5*ms), withLatency("b", 1, 5*ms)}, []int{1, 0}, "b"},
		{"tie goes to first draw (a)", []Backend{withLatency("a", 1, 5*ms), withLatency("b", 1, 5*ms)}, []int{0, 0}, "a"},
		// Three available: draws 2 and then 0 -> c vs a; b (the best) is not drawn.
		{"only the two drawn compete", []Backend{withLatency("a", 0, 9*ms), withLatency("b", 0, 1*ms), withLatency("c", 0, 5*ms)}, []int{2, 0}, "c"},
		// Draws 0 and 0 -> second draw skips the first: a vs b.
		{"second draw skips the first", []Backend{withLatency("a", 0, 9*ms), withLatency("b", 0, 1*ms), withLatency("c", 0, 5*ms)}, []int{0, 0}, "b"},
		// Indexes count available backends only: draws 1, 1 -> c vs d (b is down).
		{"draws index the available backends", []Backend{withLatency("a", 0, 1*ms), {ID: "b"}, withLatency("c", 0, 9*ms), withLatency("d", 0, 3*ms)}, []int{1, 1}, "d"},
		// Unknown latency takes the smallest known (2ms among available): a scores 2ms*3=6ms, b 3ms*1.
		{"unknown latency is the smallest known, load still counts", []Backend{withLatency("a", 2, 0), withLatency("b", 0, 3*ms), withLatency("c", 0, 2*ms)}, []int{0, 0}, "b"},
		// Unknown a scores 2ms*1, b 3ms*1.
		{"unknown latency idle beats slower", []Backend{withLatency("a", 0, 0), withLatency("b", 0, 3*ms), withLatency("c", 5, 2*ms)}, []int{0, 0}, "a"},
		// The smallest known latency comes from available backends only: d (1µs) is down.
		{"smallest known ignores unavailable", []Backend{withLatency("a", 1, 0), withLatency("b", 0, 3*ms), {ID: "d", Latency: time.Microsecond}}, []int{0, 0}, "b"},
		{"no latency known: least loaded of two", []Backend{withLatency("a", 3, 0), withLatency("b", 1, 0)}, []int{0, 0}, "b"},
		// 2^62 ns × 4 = 2^64 wraps to 0 in 64 bits.
		{"huge scores do not overflow", []Backend{withLatency("a", 3, 1<<62), withLatency("b", 0, time.Hour)}, []int{0, 0}, "b"},
		{"huge scores do not overflow, max values", []Backend{withLatency("a", math.MaxInt, time.Duration(math.MaxInt64)), withLatency("b", math.MaxInt-1, time.Duration(math.MaxInt64))}, []int{0, 0}, "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := P2C(&seqRand{vals: tt.rand}).Pick(tt.pool, "")
			if got < 0 || tt.pool[got].ID != tt.want {
				t.Errorf("Pick = %d, want %q", got, tt.want)
			}
		})
	}
}

func TestP2COneAvailable(t *testing.T) {
	pool := []Backend{{ID: "a"}, withLatency("b", 50, time.Second), {ID: "c", Healthy: true, Capacity: 1, InFlight: 1}}
	p := P2C(&seqRand{vals: []int{0, 1, 2}})
	for i := 0; i < 10; i++ {
		if got := p.Pick(pool, ""); got != 1 {
			t.Fatalf("Pick = %d, want 1", got)
		}
	}
}

// TestP2CSteersAwayFromSlow checks the user-visible effect with real
// randomness: the slow, busy slave is never picked while there are two or
// more better ones, and the fastest gets the largest share.
func TestP2CSteersAwayFromSlow(t *testing.T) {
	ms := time.Millisecond
	pool := []Backend{
		withLatency("fast", 1, 2*ms),
		withLatency("medium", 0, 5*ms),
		withLatency("ok", 0, 8*ms),
		withLatency("slow", 3, 50*ms),
	}
	p := P2C(nil)
	counts := map[string]int{}
	for i := 0; i < 10000; i++ {
		counts[pool[p.Pick(pool, "")].ID]++
	}
	if counts["slow"] != 0 {
		t.Errorf("slow picked %d times, want 0 (%v)", counts["slow"], counts)
	}
	// fast wins every pair it is in: 3 of 6 pairs, so about half.
	if counts["fast"] < 4500 || counts["fast"] > 5500 {
		t.Errorf("fast picked %d of 10000, want about 5000 (%v)", counts["fast"], counts)
	}
	if !(counts["fast"] > counts["medium"] && counts["medium"] > counts["ok"]) {
		t.Errorf("shares not ordered by score: %v", counts)
	}
}
