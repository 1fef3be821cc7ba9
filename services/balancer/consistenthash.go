package balancer

import (
	"cmp"
	"slices"
	"strconv"
	"sync/atomic"
)

// consistentHash maps keys onto a hash ring of backend IDs.
type consistentHash struct {
	replicas int
	ring     atomic.Pointer[ring]
	fallback Rand // for the least-conn fallback on empty keys
}

// ConsistentHash returns a policy that maps each key onto a hash ring holding
// replicas virtual nodes per backend ID (DefaultReplicas when replicas <= 0),
// and picks the first available backend clockwise from the key's hash.
//
// While its owner is available a key always goes to the same backend, whatever
// the order of pool and across master restarts: the ring depends only on the
// set of IDs and on replicas, and hashes with FNV-1a (64-bit) followed by a
// fixed bit mixer. Adding or removing a backend moves only about 1/n of the
// keys, and only to or from that backend.
//
// When the owner is unavailable (unhealthy, or at capacity: a bounded-load
// fallback), the key goes to the next available backend clockwise, and it
// returns to its owner as soon as the owner is available again. For that the
// caller must keep unavailable backends in pool rather than filter them out.
//
// An empty key has no affinity: it is balanced like LeastConn (fewest in
// flight, random among ties).
//
// The ring is built on first use and rebuilt only when the set of IDs in pool
// changes (health, load and order changes do not rebuild it); it is an
// immutable snapshot swapped atomically, so Pick stays lock-free and does not
// allocate between rebuilds. Use one policy per pool: alternating two
// different pools on one policy rebuilds the ring on every call. IDs should be
// unique; a duplicated ID owns a single share of the ring.
func ConsistentHash(replicas int) Policy {
	if replicas <= 0 {
		replicas = DefaultReplicas
	}
	return &consistentHash{replicas: replicas, fallback: globalRand{}}
}

func (p *consistentHash) Pick(pool []Backend, key string) int {
	if key == "" {
		return pickLeastConn(pool, p.fallback)
	}
	r := p.ring.Load()
	ordered, ok := r.matches(pool)
	if !ok {
		r = newRing(pool, p.replicas)
		p.ring.Store(r)
		ordered, _ = r.matches(pool)
	}
	return r.pick(pool, ordered, hashString(key))
}

// ring is an immutable consistent-hash ring.
type ring struct {
	ids    []string         // distinct IDs, in the order of the pool it was built from
	slot   map[string]int32 // ID -> index into ids
	points []uint64         // virtual node hashes, ascending
	owners []int32          // owners[i] is the index into ids owning points[i]
	srcLen int              // len of the pool it was built from
}

func newRing(pool []Backend, replicas int) *ring {
	r := &ring{slot: make(map[string]int32, len(pool)), srcLen: len(pool)}
	for i := range pool {
		id := pool[i].ID
		if _, dup := r.slot[id]; !dup {
			r.slot[id] = int32(len(r.ids))
			r.ids = append(r.ids, id)
		}
	}
	type vnode struct {
		h uint64
		o int32
	}
	vnodes := make([]vnode, 0, len(r.ids)*replicas)
	var buf []byte
	for o, id := range r.ids {
		for v := 0; v < replicas; v++ {
			buf = strconv.AppendInt(append(append(buf[:0], id...), '#'), int64(v), 10)
			vnodes = append(vnodes, vnode{hashBytes(buf), int32(o)})
		}
	}
	// Break hash collisions by ID, not by slot, so the ring does not
	// depend on the order of the pool.
	slices.SortFunc(vnodes, func(a, b vnode) int {
		if c := cmp.Compare(a.h, b.h); c != 0 {
			return c
		}
		return cmp.Compare(r.ids[a.o], r.ids[b.o])
	})
	r.points = make([]uint64, len(vnodes))
	r.owners = make([]int32, len(vnodes))
	for i, vn := range vnodes {
		r.points[i], r.owners[i] = vn.h, vn.o
	}
	return r
}

// matches reports whether r was built for the set of IDs in pool (ok), and
// whether pool lists exactly r.ids in order, so that a ring slot is also the
// pool index (ordered). It does not allocate.
func (r *ring) matches(pool []Backend) (ordered, ok bool) {
	if r == nil || len(pool) != r.srcLen {
		return false, false
	}
	ordered = len(r.ids) == len(pool)
	for i := range pool {
		if ordered && pool[i].ID == r.ids[i] {
			continue
		}
		ordered = false
		if _, in := r.slot[pool[i].ID]; !in {
			return false, false
		}
	}
	return ordered, true
}

// pick walks the ring clockwise from h and returns the pool index of the
// first available owner, or -1.
func (r *ring) pick(pool []Backend, ordered bool, h uint64) int {
	n := len(r.points)
	if n == 0 || !anyAvailable(pool) {
		return -1
	}
	start, _ := slices.BinarySearch(r.points, h)
	prev := int32(-1)
	for step := 0; step < n; step++ {
		i := start + step
		if i >= n {
			i -= n
		}
		o := r.owners[i]
		if o == prev {
			continue
		}
		prev = o
		if j := r.index(pool, o, ordered); j >= 0 {
			return j
		}
	}
	return -1
}

// index returns the pool index of an available backend whose ID is r.ids[o],
// or -1.
func (r *ring) index(pool []Backend, o int32, ordered bool) int {
	if ordered {
		if pool[o].Available() {
			return int(o)
		}
		return -1
	}
	id := r.ids[o]
	for j := range pool {
		if pool[j].ID == id && pool[j].Available() {
			return j
		}
	}
	return -1
}

func anyAvailable(pool []Backend) bool {
	for i := range pool {
		if pool[i].Available() {
			return true
		}
	}
	return false
}

// FNV-1a, 64-bit, as in hash/fnv, inlined so hashing a key does not allocate.
const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func hashString(s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return mix64(h)
}

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset64)
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime64
	}
	return mix64(h)
}

// mix64 is MurmurHash3's 64-bit finalizer. FNV-1a alone barely changes the
// top bits for keys that differ only in their last bytes ("job-1", "job-2"),
// which would cluster them on the ring; the finalizer spreads every input bit
// over the whole word. Both are fixed, so the mapping is stable forever.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
