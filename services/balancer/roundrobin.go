package balancer

import "sync/atomic"

// roundRobin hands out the available backends in turn.
type roundRobin struct {
	next atomic.Uint64
}

// RoundRobin returns a policy that picks the available backends in turn, in
// pool order, starting with the first.
//
// The rotation is over the available backends only: the n-th pick (counted
// by an atomic counter shared by all callers) goes to the (n mod k)-th of the
// k available backends. So while availability is stable every available
// backend gets exactly one pick in every k, and an unavailable backend's turn
// is not inherited by its neighbour (which would then get twice its share).
// When availability changes the rotation continues from the same counter, so
// its phase may shift by a position.
func RoundRobin() Policy {
	return &roundRobin{}
}

func (p *roundRobin) Pick(pool []Backend, _ string) int {
	k := 0
	for i := range pool {
		if pool[i].Available() {
			k++
		}
	}
	if k == 0 {
		return -1
	}
	target := int((p.next.Add(1) - 1) % uint64(k))
	return nthAvailable(pool, target)
}

// nthAvailable returns the index of the n-th (from 0) available backend in
// pool, or -1 when there are not that many.
func nthAvailable(pool []Backend, n int) int {
	for i := range pool {
		if pool[i].Available() {
			if n == 0 {
				return i
			}
			n--
		}
	}
	return -1
}
