package balancer

// leastConn picks the available backend with the fewest tasks in flight.
type leastConn struct {
	r Rand
}

// LeastConn returns a policy that picks the available backend with the fewest
// tasks in flight, breaking ties uniformly at random by reservoir sampling, so
// that two idle slaves share the work evenly rather than the first one taking
// it all. If r is nil, math/rand/v2 is used.
//
// Backends are compared by raw InFlight, not by InFlight/Capacity: Capacity is
// only a hard limit (a backend at capacity is never picked). For slaves that
// differ in speed, prefer P2C, whose latency term captures it.
func LeastConn(r Rand) Policy {
	return leastConn{r: orDefault(r)}
}

func (p leastConn) Pick(pool []Backend, _ string) int {
	return pickLeastConn(pool, p.r)
}

func pickLeastConn(pool []Backend, r Rand) int {
	best, ties := -1, 0
	for i := range pool {
		b := &pool[i]
		if !b.Available() {
			continue
		}
		switch {
		case best < 0 || b.InFlight < pool[best].InFlight:
			best, ties = i, 1
		case b.InFlight == pool[best].InFlight:
			// Reservoir sampling: the t-th tied backend replaces the
			// current choice with probability 1/t.
			ties++
			if intn(r, ties) == 0 {
				best = i
			}
		}
	}
	return best
}
