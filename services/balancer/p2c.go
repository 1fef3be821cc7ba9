package balancer

import (
	"math/bits"
	"time"
)

// p2c is the power-of-two-random-choices policy.
type p2c struct {
	r Rand
}

// P2C returns a policy that draws two distinct available backends at random
// and picks the one with the lower score Latency × (InFlight + 1); on equal
// scores the first draw wins, so ties are broken at random. With one backend
// available it returns that one. If r is nil, math/rand/v2 is used.
//
// A backend whose Latency is unknown (<= 0), such as a slave that just joined,
// is scored with the smallest known latency among the available backends, so
// it competes on load alone instead of being flooded as if it were infinitely
// fast; if no latency is known, the score is InFlight + 1 (plain least-load of
// two). The product is computed in 128 bits and cannot overflow.
func P2C(r Rand) Policy {
	return p2c{r: orDefault(r)}
}

func (p p2c) Pick(pool []Backend, _ string) int {
	k := 0
	for i := range pool {
		if pool[i].Available() {
			k++
		}
	}
	switch k {
	case 0:
		return -1
	case 1:
		return nthAvailable(pool, 0)
	}
	a := intn(p.r, k)
	b := intn(p.r, k-1)
	if b >= a {
		b++
	}
	ia, ib := -1, -1
	for i, n := 0, 0; i < len(pool) && (ia < 0 || ib < 0); i++ {
		if !pool[i].Available() {
			continue
		}
		if n == a {
			ia = i
		}
		if n == b {
			ib = i
		}
		n++
	}

	la, lb := pool[ia].Latency, pool[ib].Latency
	if la <= 0 || lb <= 0 {
		least := minKnownLatency(pool)
		if la <= 0 {
			la = least
		}
		if lb <= 0 {
			lb = least
		}
	}
	if lessScore(lb, pool[ib].InFlight, la, pool[ia].InFlight) {
		return ib
	}
	return ia
}

// minKnownLatency returns the smallest positive latency among the available
// backends, or 1 when none is known.
func minKnownLatency(pool []Backend) time.Duration {
	least := time.Duration(0)
	for i := range pool {
		l := pool[i].Latency
		if l > 0 && pool[i].Available() && (least == 0 || l < least) {
			least = l
		}
	}
	if least == 0 {
		return 1
	}
	return least
}

// lessScore reports whether l1*(n1+1) < l2*(n2+1), computed in 128 bits.
// Latencies must be positive; negative in-flight counts count as 0.
func lessScore(l1 time.Duration, n1 int, l2 time.Duration, n2 int) bool {
	h1, lo1 := bits.Mul64(uint64(l1), load(n1))
	h2, lo2 := bits.Mul64(uint64(l2), load(n2))
	return h1 < h2 || (h1 == h2 && lo1 < lo2)
}

func load(inFlight int) uint64 {
	if inFlight < 0 {
		return 1
	}
	return uint64(inFlight) + 1
}
