package calc

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/casbin/govaluate"
)

// numberRE matches the numeric literals of the grammar.
var numberRE = regexp.MustCompile(`(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?`)

// randomLiteral returns a literal (possibly with a sign, which can change
// the structure, e.g. "-2 ** 2") that exercises the value-dependent parts of
// the emitter: zeros, negative zeros, negative exponents, huge and tiny
// values, and ordinary ones.
func randomLiteral(r *rand.Rand) string {
	switch r.IntN(12) {
	case 0:
		return "0"
	case 1:
		return "-0"
	case 2:
		return "0.0"
	case 3:
		return "-" + strconv.Itoa(1+r.IntN(5))
	case 4:
		return "1e308"
	case 5:
		return "1e-320"
	case 6:
		return strconv.FormatFloat(r.Float64()*100, 'g', -1, 64)
	case 7:
		return "-" + strconv.FormatFloat(r.Float64(), 'f', 3, 64)
	case 8:
		return strconv.Itoa(r.IntN(100000))
	default:
		return strconv.Itoa(r.IntN(10))
	}
}

// varyLiterals replaces every literal of expr with randomLiteral.
func varyLiterals(r *rand.Rand, expr string) string {
	return numberRE.ReplaceAllStringFunc(expr, func(string) string { return randomLiteral(r) })
}

// sameResult reports whether two Eval outcomes are identical: the same float64
// bits, or errors of the same kind, message and position.
func sameResult(v1 float64, err1 error, v2 float64, err2 error) bool {
	if err1 == nil || err2 == nil {
		return err1 == nil && err2 == nil && math.Float64bits(v1) == math.Float64bits(v2)
	}
	var e1, e2 *Error
	if !errors.As(err1, &e1) || !errors.As(err2, &e2) {
		return false
	}
	return *e1 == *e2
}

// checkCachedMatchesUncached evaluates expr through the cache three times
// (so that, if its shape is new, the first compiles it with constants, the
// second for the cache, and the third finds it), and without the cache, and
// compares bit for bit.
func checkCachedMatchesUncached(t *testing.T, expr string) {
	t.Helper()
	want, wantErr := evalUncached(expr, DefaultLimits)
	for i := range 3 {
		got, err := Eval(expr, DefaultLimits)
		if !sameResult(got, err, want, wantErr) {
			t.Fatalf("%q (try %d): cached Eval = %v (bits %#x), %v; uncached = %v (bits %#x), %v",
				expr, i, got, math.Float64bits(got), err, want, math.Float64bits(want), wantErr)
		}
	}
	if e, cerr := Compile(expr, DefaultLimits); cerr == nil {
		got, err := e.Eval()
		if !sameResult(got, err, want, wantErr) {
			t.Fatalf("%q: Compile().Eval() = %v, %v; uncached Eval = %v, %v", expr, got, err, want, wantErr)
		}
	}
}

func withCacheSize(t testing.TB, n int) {
	SetCacheSize(n)
	t.Cleanup(func() { SetCacheSize(DefaultCacheSize) })
}

func TestCacheBitIdentical(t *testing.T) {
	withCacheSize(t, DefaultCacheSize)
	r := rand.New(rand.NewPCG(5, 6))
	n := 4000
	if testing.Short() || raceEnabled {
		n = 400
	}
	h0, m0 := CacheStats()
	for range n {
		var b strings.Builder
		genExpr(r, &b, 1+r.IntN(6))
		template := b.String()
		checkCachedMatchesUncached(t, template)
		// The same shape (mostly: a signed replacement literal can change
		// the structure, and zeros change the guards) with other values.
		for range 8 {
			checkCachedMatchesUncached(t, varyLiterals(r, template))
		}
	}
	h1, m1 := CacheStats()
	t.Logf("hits %d, misses %d", h1-h0, m1-m0)
	if h1-h0 < m1-m0 {
		t.Errorf("expected more hits than misses: hits %d, misses %d", h1-h0, m1-m0)
	}
}

func TestCacheValueDependentGuards(t *testing.T) {
	withCacheSize(t, DefaultCacheSize)
	// Expressions of one shape whose literal values decide the guards or the
	// error position, evaluated in an order that puts each into the cache
	// before the next one looks it up.
	groups := [][]string{
		{"1 / (1 / 2)", "1 / (1 / 0)", "1/(1/0)", "10 / (100 / 0)", "1 / (1 / -0)", "1 / (1 / 3)"},
		{"(1 / 2) ** 0", "(0 / 0) ** 0", "(10 / 0) ** 0", "(1 / 0.0) ** 2"},
		{"2 ** -1", "0 ** -1", "0 ** 1", "0 ** -0", "-0 ** -1", "(0) ** -0.5", "00 ** -1e-300"},
		{"1 / 2", "1 / 0", "12345 / 0", "1 % 0", "-1 % -0", "1 % 3"},
		{"(1e308 * 10) - 1 / 2", "(1e308 * 10) - 1 / 0", "(1e308 * 10) - 10 / 0", "(1e307 * 10) - 1 / 0"},
		{"1 / (2 - 2)", "1 / (2 - 3)", "100 / (7 - 7)"},
		{"1 ** (1 / 0)", "1 ** (1 / 1)", "2 ** (1 / 0)"},
		{"3 % (1 % 0)", "3 % (1 % 2)", "30 % (10 % 0)"},
		{"-0", "-(0)", "-0 * 1", "-(0 ** 2)", "-0.0 ** 2", "-5", "-(5)", "-5 * 1", "-(5 ** 2)"},
		{"0 * -1", "-0 + -0", "-0 - 0", "0 - 0", "-0 * -0", "-0 % 5", "-0 / 5", "5 / -1e308 / 1e308"},
		{"2 ** 3 ** 2", "2 ** 0 ** -1", "0 ** 3 ** -2", "-2 ** -3 ** 2"},
		{"9**9**9**9", "9**9**9**0", "0**9**9**9", "9**9**-9**9"},
		{"1e308 * 10 - 1e308 * 10", "(-8) ** (1 / 3)", "(1e308 * 10) % 2", "(8) ** (1 / 3)"},
	}
	for _, g := range groups {
		for _, expr := range g {
			checkCachedMatchesUncached(t, expr)
		}
		for _, expr := range g { // all cached now
			checkCachedMatchesUncached(t, expr)
		}
	}
	// Spot checks of the positions, which depend on the expression at hand,
	// not on the one that put the shape into the cache.
	for _, tc := range []struct {
		expr string
		pos  int
	}{
		{"1 / (1 / 0)", 7}, {"1/(1/0)", 4}, {"10 / (100 / 0)", 10}, {"12345 / 0", 6},
		{"0 ** -1", 2}, {"(10 / 0) ** 0", 4}, {"(1e307 * 10) - 1 / 0", 17},
	} {
		_, err := Eval(tc.expr, DefaultLimits)
		var e *Error
		if !errors.As(err, &e) || e.Kind != ErrDivByZero || e.Pos != tc.pos || !strings.HasSuffix(e.Msg, " at position "+strconv.Itoa(tc.pos)) {
			t.Errorf("Eval(%q) = %v; want a division by zero at position %d", tc.expr, err, tc.pos)
		}
	}
	for _, expr := range []string{"-0", "-(0)", "-0 * 1", "-(0 ** 2)", "-0.0 ** 2", "-0 + -0", "-0 * 1e300"} {
		if v, err := Eval(expr, DefaultLimits); err != nil || v != 0 || !math.Signbit(v) {
			t.Errorf("Eval(%q) = %v, %v; want -0", expr, v, err)
		}
	}
}

// TestShapeKeyDeterminesTokens checks the premise of the cache: expressions
// with equal shape keys emit equal token streams in params mode (guards
// included), and the parameters are exactly their literals.
func TestShapeKeyDeterminesTokens(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	seen := map[string]string{}
	collisions := 0
	n := 3000
	if testing.Short() || raceEnabled {
		n = 600
	}
	for range n {
		var b strings.Builder
		genExpr(r, &b, 1+r.IntN(6))
		template := b.String()
		for v := range 6 {
			expr := template
			if v > 0 {
				expr = varyLiterals(r, template)
			}
			p := parser{src: expr, lim: DefaultLimits.normalized(), build: true}
			root := p.parse()
			if p.err != nil || len(p.nodes) > maxShapeNodes {
				continue
			}
			var sc scratch
			sc.shape(p.nodes, root)
			for _, guardAll := range []bool{false, true} {
				sc.key[0] = keyPlain
				if guardAll {
					sc.key[0] = keyGuardAll
				}
				toks, risky := tokens(p.nodes, root, nil, 0, guardAll, true)
				s := fmt.Sprintf("risky=%v %s", risky, describeTokens(t, toks))
				if prev, ok := seen[string(sc.key)]; ok {
					collisions++
					if prev != s {
						t.Fatalf("%q: shape %q emits\n%s\nbut an earlier expression of that shape emitted\n%s", expr, sc.key, s, prev)
					}
				} else {
					seen[string(sc.key)] = s
				}
				// The parameters are the literals, in source order.
				var lits []float64
				for _, m := range numberRE.FindAllString(expr, -1) {
					f, _ := strconv.ParseFloat(m, 64)
					lits = append(lits, f)
				}
				if len(lits) != len(sc.params.vals) {
					t.Fatalf("%q: %d literals, %d parameters", expr, len(lits), len(sc.params.vals))
				}
				for i, f := range lits {
					if math.Abs(f) != math.Abs(sc.params.vals[i]) {
						t.Fatalf("%q: parameter %d is %v, literal is %v", expr, i, sc.params.vals[i], f)
					}
				}
			}
		}
	}
	if collisions < n/3 {
		t.Errorf("only %d expressions shared a shape", collisions)
	}
}

// describeTokens renders a params-mode token stream, including what each
// guard does on a zero divisor or zero base.
func describeTokens(t *testing.T, toks []govaluate.ExpressionToken) string {
	var b strings.Builder
	for _, tok := range toks {
		switch tok.Kind {
		case govaluate.FUNCTION:
			f := tok.Value.(govaluate.ExpressionFunction)
			_, err := f(0.0)
			var ge *guardError
			if !errors.As(err, &ge) {
				_, err = f(0.0, -1.0)
			}
			if !errors.As(err, &ge) {
				t.Fatalf("guard returned %v", err)
			}
			fmt.Fprintf(&b, "guard(%d,%d) ", ge.op, ge.ord)
		case govaluate.NUMERIC:
			if tok.Value != -1.0 {
				t.Fatalf("NUMERIC token %v in params mode", tok.Value)
			}
			b.WriteString("-1 ")
		default:
			fmt.Fprintf(&b, "%v:%v ", tok.Kind, tok.Value)
		}
	}
	return b.String()
}

// distinctShape returns the i-th of many distinct shapes: 10 literals and 9
// operators from + - * % chosen by the base-4 digits of i (4^9 = 262144).
func distinctShape(i int) string {
	var b strings.Builder
	b.WriteString("7")
	for range 9 {
		b.WriteString(" " + []string{"+", "-", "*", "%"}[i%4] + " 3")
		i /= 4
	}
	return b.String()
}

// bigShape returns the i-th of many distinct shapes of nearly maxShapeNodes
// nodes with many tokens per node (parentheses and guards).
func bigShape(i int) string {
	var b strings.Builder
	b.WriteString("1")
	for k := range (maxShapeNodes - 1) / 6 {
		b.WriteString(" + 1 " + []string{"/", "%"}[(i>>k)&1] + " (1 " + []string{"/", "%"}[(i>>(k+1))&1] + " 0)")
	}
	return b.String()
}

func TestCacheBounded(t *testing.T) {
	for _, tc := range []struct {
		size  int
		shape func(int) string
		n     int
		twice bool // evaluate each shape twice, which caches it
	}{
		{DefaultCacheSize, distinctShape, 100000, false},
		{DefaultCacheSize, distinctShape, 100000, true},
		{DefaultCacheSize, bigShape, 20000, true},
		{100, distinctShape, 100000, true},
		{8, distinctShape, 10000, true},
		{3, distinctShape, 10000, true},
		{1, distinctShape, 10000, true},
	} {
		p := parser{src: tc.shape(0), lim: DefaultLimits.normalized(), build: true}
		p.parse()
		t.Run(fmt.Sprintf("%d/%d-nodes/twice=%v", tc.size, len(p.nodes), tc.twice), func(t *testing.T) {
			withCacheSize(t, tc.size)
			c := shapes.Load()
			maxCost := max(tc.size/cacheWays, 1) * setBudget
			check := func() {
				t.Helper()
				if n, cost := c.entries(); n > tc.size || cost > maxCost {
					t.Fatalf("%d entries costing %d, limits %d and %d", n, cost, tc.size, maxCost)
				}
			}
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const hot = "4 * (2 + 3) - 7 / 2"
			n := tc.n
			if testing.Short() || raceEnabled {
				n /= 10
			}
			h0, m0 := CacheStats()
			hotMisses := 0
			for i := range n {
				expr := tc.shape(i)
				want, wantErr := evalUncached(expr, DefaultLimits)
				got, err := Eval(expr, DefaultLimits)
				if !sameResult(got, err, want, wantErr) {
					t.Fatalf("%q: %v, %v; want %v, %v", expr, got, err, want, wantErr)
				}
				if tc.twice {
					got, err := Eval(expr, DefaultLimits)
					if !sameResult(got, err, want, wantErr) {
						t.Fatalf("%q again: %v, %v; want %v, %v", expr, got, err, want, wantErr)
					}
				}
				if i%10 == 0 {
					_, m := CacheStats()
					if v, err := Eval(hot, DefaultLimits); v != 16.5 || err != nil {
						t.Fatalf("hot: %v, %v", v, err)
					}
					if _, m2 := CacheStats(); m2 != m {
						hotMisses++
					}
				}
				if i%1000 == 0 {
					check()
				}
			}
			check()
			h1, m1 := CacheStats()
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			grow := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			entries, cost := c.entries()
			t.Logf("%d entries costing %d tokens (limit %d), hits %d, misses %d, hot shape misses %d of %d, heap growth %d KiB",
				entries, cost, maxCost, h1-h0, m1-m0, hotMisses, n/10, grow>>10)
			if tc.size >= 100 && hotMisses > n/10/50 {
				t.Errorf("the hot shape missed %d times of %d under a flood of distinct shapes", hotMisses, n/10)
			}
			if !tc.twice && entries > 2 {
				t.Errorf("shapes seen once were cached: %d entries", entries)
			}
			// about 150 bytes per token; allow a generous margin
			if limit := int64(maxCost)*200 + 4<<20; grow > limit {
				t.Errorf("heap grew by %d KiB, limit %d KiB", grow>>10, limit>>10)
			}
		})
	}
}

func TestCacheDisabled(t *testing.T) {
	withCacheSize(t, 0)
	h0, m0 := CacheStats()
	for _, expr := range []string{"4 * (2 + 3) - 7 / 2", "1 / (1 / 0)", "-0"} {
		checkCachedMatchesUncached(t, expr)
	}
	h1, m1 := CacheStats()
	if h1 != h0 || m1-m0 != 9 {
		t.Errorf("disabled cache: hits +%d, misses +%d; want +0, +9", h1-h0, m1-m0)
	}
}

func TestCacheStats(t *testing.T) {
	withCacheSize(t, DefaultCacheSize) // empty
	h0, m0 := CacheStats()
	for i := range 10 {
		if _, err := Eval(strconv.Itoa(i)+" * (2 + 3) - 7 / 2", DefaultLimits); err != nil {
			t.Fatal(err)
		}
	}
	// The first miss only records the shape, the second caches it.
	if h, m := CacheStats(); h-h0 != 8 || m-m0 != 2 {
		t.Errorf("hits +%d, misses +%d; want +8, +2", h-h0, m-m0)
	}
	// The re-evaluation of a non-finite result looks up a second shape.
	h0, m0 = CacheStats()
	for _, expr := range []string{"2 / 0", "3 / 0", "4 / 0", "5 / 0"} {
		if _, err := Eval(expr, DefaultLimits); err == nil {
			t.Fatalf("%q: no error", expr)
		}
	}
	if h, m := CacheStats(); h-h0 != 4 || m-m0 != 4 {
		t.Errorf("hits +%d, misses +%d; want +4, +4", h-h0, m-m0)
	}
	// Expressions too large to cache count as misses.
	big := "1" + strings.Repeat(" + 1", maxShapeNodes)
	h0, m0 = CacheStats()
	for range 3 {
		if v, err := Eval(big, DefaultLimits); err != nil || v != maxShapeNodes+1 {
			t.Fatalf("big: %v, %v", v, err)
		}
	}
	if h, m := CacheStats(); h-h0 != 0 || m-m0 != 3 {
		t.Errorf("big: hits +%d, misses +%d; want +0, +3", h-h0, m-m0)
	}
	checkCachedMatchesUncached(t, big+" / (1 / 0)")
	mid := "1" + strings.Repeat(" + 1", (maxShapeNodes-3)/2-1) + " / (1 / 0)" // maxShapeNodes-1 nodes
	h0, m0 = CacheStats()
	checkCachedMatchesUncached(t, mid)
	if h, m := CacheStats(); h-h0 != 1 || m-m0 != 2 {
		t.Errorf("mid: hits +%d, misses +%d; want +1, +2", h-h0, m-m0)
	}
}

func TestCacheComparesFullKeys(t *testing.T) {
	// A forged entry whose hash is that of another key must not be found
	// under that key: a 64-bit hash collision cannot give a wrong result.
	SetCacheSize(8)
	t.Cleanup(func() { SetCacheSize(DefaultCacheSize) })
	c := shapes.Load()
	real := []byte("U+nn")
	h := maphash.Bytes(c.seed, real)
	c.insert(&shapeEntry{key: "U-nn", hash: h})
	if e, _ := c.lookup(real); e != nil {
		t.Fatalf("lookup(%q) found the entry of %q", real, e.key)
	}
	for range 2 {
		if v, err := Eval("1 + 2", DefaultLimits); v != 3 || err != nil {
			t.Fatalf("1 + 2 = %v, %v", v, err)
		}
	}
	if e, _ := c.lookup(real); e == nil || e.key != string(real) {
		t.Fatalf("lookup(%q) = %v", real, e)
	}
}

func TestLiteralParams(t *testing.T) {
	p := literalParams{vals: []float64{1.5, -0.0, 42}}
	for i, want := range p.vals {
		v, err := p.Get("p" + strconv.Itoa(i))
		if err != nil || math.Float64bits(v.(float64)) != math.Float64bits(want) {
			t.Errorf("Get(p%d) = %v, %v; want %v", i, v, err, want)
		}
	}
	for _, name := range []string{"p3", "p", "", "p99999999999999999999"} {
		if _, err := p.Get(name); !errors.Is(err, ErrInternal) {
			t.Errorf("Get(%q) = %v; want an internal error", name, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = p.Get("p2") }); n != 0 {
		t.Errorf("Get allocates %v times", n)
	}
}

// TestCacheConcurrent runs Eval from several goroutines over shared shapes,
// while others flood the cache with distinct shapes and resize it; run it
// with -race.
func TestCacheConcurrent(t *testing.T) {
	withCacheSize(t, 64)
	templates := []string{"4 * (2 + 3) - 7 / 2", "1 / (1 / 2)", "2 ** -1 ** 2", "(1e308 * 10) - 1 / 2", "-(3 - 1) % 5"}
	iters := 3000
	if testing.Short() {
		iters = 300
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for range iters {
				expr := varyLiterals(r, templates[r.IntN(len(templates))])
				want, wantErr := evalUncached(expr, DefaultLimits)
				got, err := Eval(expr, DefaultLimits)
				if !sameResult(got, err, want, wantErr) {
					t.Errorf("%q: %v, %v; want %v, %v", expr, got, err, want, wantErr)
					return
				}
			}
		})
	}
	for g := range 2 {
		wg.Go(func() {
			for i := range iters {
				expr := distinctShape(i*2 + g)
				want, wantErr := evalUncached(expr, DefaultLimits)
				if got, err := Eval(expr, DefaultLimits); !sameResult(got, err, want, wantErr) {
					t.Errorf("%q: %v, %v; want %v, %v", expr, got, err, want, wantErr)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			SetCacheSize(16 + i)
			runtime.Gosched()
		}
		SetCacheSize(64)
	})
	wg.Wait()
}

func TestEvalAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops objects at random under the race detector")
	}
	withCacheSize(t, DefaultCacheSize)
	// "4 * (2 + 3) - 7 / 2" evaluates 4 operations at run time, each boxing
	// its float64 result; its literals are small integers (pre-boxed).
	for range 2 {
		if _, err := Eval(benchExpr, DefaultLimits); err != nil {
			t.Fatal(err)
		}
	}
	n := testing.AllocsPerRun(200, func() { _, _ = Eval(benchExpr, DefaultLimits) })
	t.Logf("Eval(%q): %v allocations on a cache hit", benchExpr, n)
	if n > 4 {
		t.Errorf("Eval(%q) allocates %v times on a cache hit, want at most 4", benchExpr, n)
	}
}
