package calc

// The shape cache: a bounded cache of compiled expressions keyed by SHAPE, the
// expression with every numeric literal replaced by a placeholder, like a
// database's prepared-statement cache.
//
// Eval parses the expression (the parser is the guard, as always), then
// scratch.shape walks the syntax tree in pre-order and writes
//
//   - the shape key: one byte per node (operator, or a literal placeholder);
//   - the literal values, in walk order (the parameters p0, p1, ...);
//   - the byte offsets of the "/", "%" and "**" operators, in walk order
//     (their position indexes).
//
// The key is a prefix encoding of the tree (each byte has a fixed arity), so
// it determines the tree exactly, and it records everything else the emitter
// decides from: a first byte for the guardAll mode, and for a literal that is
// a divisor or a "**" operand the one fact about its value that decides
// whether the operation is guarded (divisor zero or not, base zero or not,
// exponent negative or not; -0 counts as zero and as non-negative, as in the
// emitter). So two expressions with the same key emit the same token stream
// up to literal values and operator positions, and the emitter in params mode
// emits exactly that common stream: literals as VARIABLE tokens bound at
// evaluation time by literalParams, and guards that report a position index,
// which the evaluator maps to the byte offset in the expression at hand.
//
// Results are bit-identical to compiling the expression with its literals as
// constants: the tree govaluate plans is the same (a VARIABLE stage and a
// literal stage have the same planning precedence), and the only difference
// is that govaluate cannot fold constant sub-expressions at compile time, so
// it computes them at evaluation time, with the same stage functions, in the
// same order, on the same float64 values.
//
// The cache is a set-associative table of atomic pointers to immutable
// entries: a lookup hashes the key (hash/maphash, randomly seeded), picks one
// set of up to 8 slots and compares full keys (so a hash collision cannot
// return the wrong entry); it takes no lock and writes nothing shared, apart
// from setting the entry's reference bit if it is clear. A miss first goes
// through a doorkeeper (see admit): a shape is compiled for the cache only at
// its second miss, the first is compiled with constants as without the cache.
// Admitted shapes are compiled outside any lock and inserted under the set's
// mutex with CLOCK (second chance) replacement: the set's hand evicts the
// first entry not used since the hand last passed it, clearing the reference
// bits on its way, until the set has a free slot and its cost budget (see
// setBudget) has room. So an entry used between two passes of the hand
// survives, a flood of shapes that each come once inserts nothing, and the
// cache never holds more than CacheSize entries nor more than setBudget
// tokens (32 per slot) per set.

import (
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/casbin/govaluate"
)

// DefaultCacheSize is the initial number of expression shapes Eval keeps
// compiled (see SetCacheSize).
const DefaultCacheSize = 4096

const (
	// maxShapeNodes bounds the AST nodes of a cached expression (and the
	// work of computing its shape key).
	maxShapeNodes = 128
	// cacheWays is the associativity of the cache.
	cacheWays = 8
)

// Shape key bytes.
const (
	keyPlain    = 'U' // first byte: compiled with guardAll unset
	keyGuardAll = 'G' // first byte: compiled with guardAll set

	keyNum         = 'n' // a literal whose value the emitter does not look at
	keyZero        = 'z' // a divisor or "**" base that is zero
	keyNonZero     = 'x' // a divisor or "**" base that is not zero
	keyNegative    = 'm' // a "**" exponent < 0
	keyNonNegative = 'p' // a "**" exponent >= 0
)

var keyOps = [...]byte{nNeg: '~', nAdd: '+', nSub: '-', nMul: '*', nDiv: '/', nMod: '%', nPow: '^'}

// Contexts of a literal in the shape walk.
const (
	ctxPlain    = iota
	ctxDivisor  // right operand of / or %: riskyDiv looks at val == 0
	ctxBase     // left operand of **: riskyPow looks at val != 0
	ctxExponent // right operand of **: riskyPow looks at val >= 0
)

// shape walks the AST rooted at root (at most maxShapeNodes nodes) and fills
// sc.key, sc.params.vals and sc.pos, and node.ord of the literals (their
// parameter index) and of the "/", "%" and "**" nodes (their position index).
func (sc *scratch) shape(nodes []node, root int32) {
	sc.key = append(sc.key[:0], keyPlain)
	sc.params.vals = sc.params.vals[:0]
	sc.pos = sc.pos[:0]
	sc.walk(nodes, root, ctxPlain)
}

func (sc *scratch) walk(nodes []node, i int32, ctx uint8) {
	n := &nodes[i]
	switch n.op {
	case nNum:
		c := byte(keyNum)
		switch ctx {
		case ctxDivisor, ctxBase:
			c = keyNonZero
			if n.val == 0 {
				c = keyZero
			}
		case ctxExponent:
			c = keyNonNegative
			if n.val < 0 {
				c = keyNegative
			}
		}
		n.ord = int32(len(sc.params.vals))
		sc.params.vals = append(sc.params.vals, n.val)
		sc.key = append(sc.key, c)
	case nNeg:
		sc.key = append(sc.key, keyOps[nNeg])
		sc.walk(nodes, n.l, ctxPlain)
	case nAdd, nSub, nMul:
		sc.key = append(sc.key, keyOps[n.op])
		sc.walk(nodes, n.l, ctxPlain)
		sc.walk(nodes, n.r, ctxPlain)
	case nDiv, nMod, nPow:
		n.ord = int32(len(sc.pos))
		sc.pos = append(sc.pos, n.pos)
		sc.key = append(sc.key, keyOps[n.op])
		if n.op == nPow {
			sc.walk(nodes, n.l, ctxBase)
			sc.walk(nodes, n.r, ctxExponent)
		} else {
			sc.walk(nodes, n.l, ctxPlain)
			sc.walk(nodes, n.r, ctxDivisor)
		}
	default:
		panic("calc: bad node op " + strconv.Itoa(int(n.op)))
	}
}

// paramNames are the (boxed) names of the parameters: p0, p1, ...
var paramNames = func() (names [maxShapeNodes]any) {
	for i := range names {
		names[i] = "p" + strconv.Itoa(i)
	}
	return names
}()

// literalParams binds the parameters of an expression compiled in params
// mode to the literal values of the expression being evaluated: Get parses
// the index out of the name ("p12" is vals[12]); no map, no allocation other
// than boxing a value that is not a small integer (exactly what a NUMERIC
// token needs, see boxFloat).
type literalParams struct {
	vals []float64
}

func (p *literalParams) Get(name string) (any, error) {
	i := 0
	for j := 1; j < len(name); j++ {
		i = i*10 + int(name[j]-'0')
	}
	if len(name) < 2 || uint(i) >= uint(len(p.vals)) {
		return nil, newError(ErrInternal, -1, "internal error: unknown parameter %q", name)
	}
	return boxFloat(p.vals[i]), nil
}

// shapeEntry is an immutable compiled shape, apart from its reference bit.
type shapeEntry struct {
	key   string
	hash  uint64
	ge    *govaluate.EvaluableExpression
	cost  int         // govaluate tokens, a measure of its memory (see setBudget)
	risky bool        // see emitter.risky
	ref   atomic.Bool // used since the CLOCK hand last passed it
}

// cacheSet is the insertion state of one set of slots.
type cacheSet struct {
	mu   sync.Mutex // serializes insertions (lookups take no lock)
	hand int        // CLOCK hand, under mu
	cost int        // total cost of the set's entries, under mu
	_    [64 - 24]byte
}

type shapeCache struct {
	seed  maphash.Seed
	ways  int
	sets  []cacheSet
	slots []atomic.Pointer[shapeEntry] // set i is slots[i*ways : (i+1)*ways]
	seen  []atomic.Uint64              // doorkeeper: hashes of shapes seen once (see admit)
}

// shapes is the cache Eval uses; nil when disabled.
var shapes atomic.Pointer[shapeCache]

func init() { SetCacheSize(DefaultCacheSize) }

// SetCacheSize sets the maximum number of expression shapes whose compiled
// form Eval keeps (DefaultCacheSize initially) and empties the cache; n <= 0
// disables it. The shape of an expression is the expression with its numbers
// replaced by placeholders (so "3 * (2 + 3)" and "4 * (1.5 + -3)" share one),
// except that numbers deciding whether a division by zero is possible count
// as zero or non-zero (and exponents as negative or not).
//
// Memory is bounded as well: the cache holds at most 32 govaluate tokens per
// shape on average (about 4 KiB; a short expression such as "4 * (2 + 3) -
// 7 / 2" is 11 tokens, about 1.5 KiB), so 16 MiB at most with the default
// size, and never caches an expression of more than 128 numbers, operators
// and unary minus signs or 256 tokens. A shape is cached the second time it
// misses the cache, so shapes that come only once do not displace others.
//
// Sizes above 1<<24 count as 1<<24. SetCacheSize is safe to call
// concurrently with Eval, but meant for start-up.
func SetCacheSize(n int) {
	if n <= 0 {
		shapes.Store(nil)
		return
	}
	n = min(n, 1<<24)
	ways := min(n, cacheWays)
	sets := n / ways
	shapes.Store(&shapeCache{
		seed:  maphash.MakeSeed(),
		ways:  ways,
		sets:  make([]cacheSet, sets),
		slots: make([]atomic.Pointer[shapeEntry], sets*ways),
		seen:  make([]atomic.Uint64, 2*sets*ways),
	})
}

// admit reports whether a shape (by its hash h) that missed the cache should
// be compiled for the cache: only when it missed recently already. The first
// miss only records h in a direct-mapped table of recently missed hashes, and
// Eval compiles the expression with constants, as without the cache. So a
// stream of shapes that each come once (an adversary, or just a varied
// workload) neither evicts anything nor costs more than the cache lookup,
// while a shape that repeats is cached at its second miss. (A hash that
// meets another in the table is at worst admitted early or recorded anew.)
func (c *shapeCache) admit(h uint64) bool {
	s := &c.seen[(h&0xffffffff)%uint64(len(c.seen))] // set uses the high bits
	if s.Load() == h {
		s.Store(0)
		return true
	}
	s.Store(h)
	return false
}

// setBudget is the maximum total cost of the entries of one set (of up to
// cacheWays entries), and so of one entry.
const setBudget = 32 * cacheWays

// set returns the index of the set a key with hash h belongs to and its slots.
func (c *shapeCache) set(h uint64) (int, []atomic.Pointer[shapeEntry]) {
	s := int((h >> 32) * uint64(len(c.sets)) >> 32) // uniform in [0, sets); sets < 2^32
	return s, c.slots[s*c.ways : (s+1)*c.ways]
}

// lookup returns the entry for key, or nil, and the key's hash. It takes no
// lock and writes nothing shared unless it sets a clear reference bit.
func (c *shapeCache) lookup(key []byte) (*shapeEntry, uint64) {
	h := maphash.Bytes(c.seed, key)
	_, set := c.set(h)
	for i := range set {
		if e := set[i].Load(); e != nil && e.hash == h && e.key == string(key) {
			if !e.ref.Load() {
				e.ref.Store(true)
			}
			return e, h
		}
	}
	return nil, h
}

// insert stores e (new, unreferenced) into its set, evicting entries with
// CLOCK until the set has a free slot and room in its budget. An entry
// costing more than setBudget is not stored, nor is e when another goroutine
// stored the same shape first.
func (c *shapeCache) insert(e *shapeEntry) {
	if e.cost > setBudget {
		return
	}
	si, set := c.set(e.hash)
	s := &c.sets[si]
	s.mu.Lock()
	defer s.mu.Unlock()
	free := -1
	for i := range set {
		old := set[i].Load()
		if old == nil {
			free = i
		} else if old.key == e.key {
			return
		}
	}
	// Each turn of the hand either clears a reference bit or evicts, and
	// the set always has an entry to evict while the condition holds, so
	// this ends within two turns of the clock per eviction.
	for free < 0 || s.cost+e.cost > setBudget {
		i := s.hand
		s.hand = (s.hand + 1) % len(set)
		old := set[i].Load()
		switch {
		case old == nil:
		case old.ref.Load():
			old.ref.Store(false)
		default:
			set[i].Store(nil)
			s.cost -= old.cost
			free = i
		}
	}
	set[free].Store(e)
	s.cost += e.cost
}

// entries returns the number and the total cost of the cached shapes (for
// tests).
func (c *shapeCache) entries() (n, cost int) {
	for i := range c.slots {
		if e := c.slots[i].Load(); e != nil {
			n++
			cost += e.cost
		}
	}
	return n, cost
}

// Hit and miss counters, striped to keep goroutines on different CPUs from
// writing one cache line on every Eval. Each scratch (which sync.Pool keeps
// mostly per P) is given a stripe when it is created.
type statStripe struct {
	hits, misses atomic.Uint64
	_            [64 - 16]byte
}

var (
	stats      [16]statStripe
	nextStripe atomic.Uint32
)

func newStatStripe() *statStripe { return &stats[nextStripe.Add(1)%uint32(len(stats))] }

// CacheStats returns how many times Eval found an expression's shape compiled
// in the cache (hits) and how many times it had to compile one with govaluate
// (misses: new shapes, a shape's first two occurrences, expressions too large
// to cache, and every Eval while the cache is disabled). Eval looks up one
// shape, plus a second one when the result is not finite and a division by
// zero might be the cause (see the package documentation). The counters are
// cumulative over the process's lifetime; SetCacheSize does not reset them.
func CacheStats() (hits, misses uint64) {
	for i := range stats {
		hits += stats[i].hits.Load()
		misses += stats[i].misses.Load()
	}
	return hits, misses
}
