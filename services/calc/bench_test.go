package calc

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/casbin/govaluate"
)

const benchExpr = "4 * (2 + 3) - 7 / 2"

var benchExprs = []struct{ name, expr string }{
	{"short", benchExpr},
	{"power", "-2 ** 3 ** 2 + 150 % 7"},
	{"divisions", "(1 + 2) / (3 + 4) / (5 - 6)"},
	{"long", "1 + 2 * 3 - 4 / 5 + 6 * (7 - 8) / 9 + 10 - 11 * 12 + 13 / 14 - 15 + 16 * 17 - 18 / 19 + 20"},
}

var sinkF float64

func BenchmarkCheck(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.expr)))
			for b.Loop() {
				if err := Check(bc.expr, DefaultLimits); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEval(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := Eval(bc.expr, DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				sinkF = v
			}
		})
	}
}

// BenchmarkEvalUncached is Eval without the shape cache (what Eval did
// before it had one): every call compiles the expression with govaluate.
func BenchmarkEvalUncached(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v, err := evalUncached(bc.expr, DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				sinkF = v
			}
		})
	}
}

// sameShapeVariants returns n expressions of the shape of expr: its literals
// replaced by random positive ones (so that no divisor becomes zero).
func sameShapeVariants(expr string, n int) []string {
	r := rand.New(rand.NewPCG(11, 12))
	out := make([]string, n)
	for i := range out {
		out[i] = numberRE.ReplaceAllStringFunc(expr, func(string) string {
			if r.IntN(2) == 0 {
				return strconv.Itoa(1 + r.IntN(999))
			}
			return strconv.FormatFloat(1+r.Float64()*99, 'f', 1+r.IntN(3), 64)
		})
	}
	return out
}

// BenchmarkEvalSameShape is what a batch looks like: the same shape with
// different numbers, so every Eval but the first finds the shape compiled.
func BenchmarkEvalSameShape(b *testing.B) {
	for _, bc := range benchExprs {
		exprs := sameShapeVariants(bc.expr, 1024)
		b.Run(bc.name, func(b *testing.B) {
			withCacheSize(b, DefaultCacheSize)
			b.ReportAllocs()
			h0, m0 := CacheStats()
			i := 0
			for b.Loop() {
				v, err := Eval(exprs[i%len(exprs)], DefaultLimits)
				if err != nil && !errors.Is(err, ErrNonFinite) {
					b.Fatal(err)
				}
				sinkF = v
				i++
			}
			reportHitRate(b, h0, m0)
		})
	}
}

// BenchmarkEvalSameShapeParallel is BenchmarkEvalSameShape from GOMAXPROCS
// goroutines (ns/op is wall time per expression, all CPUs together).
func BenchmarkEvalSameShapeParallel(b *testing.B) {
	exprs := sameShapeVariants(benchExpr, 1024)
	withCacheSize(b, DefaultCacheSize)
	b.ReportAllocs()
	var next atomic.Uint32
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1) * 7919)
		for pb.Next() {
			v, err := Eval(exprs[i%len(exprs)], DefaultLimits)
			if err != nil {
				b.Error(err)
				return
			}
			sinkF = v
			i++
		}
	})
}

// distinctShapes returns many expressions of about the size of benchExpr
// with distinct shapes: 7 literals, 6 operators from + - * / and one pair of
// parentheses (some of which do not change the shape).
func distinctShapes() []string {
	var out []string
	for i := range 4096 * 6 {
		var b strings.Builder
		ops, paren := i%4096, i/4096
		for k := range 7 {
			if k > 0 {
				b.WriteString(" " + []string{"+", "-", "*", "/"}[ops%4] + " ")
				ops /= 4
			}
			if k == paren {
				b.WriteString("(")
			}
			b.WriteString(strconv.Itoa(k + 2))
			if k == paren+1 {
				b.WriteString(")")
			}
		}
		out = append(out, b.String())
	}
	rand.New(rand.NewPCG(13, 14)).Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// BenchmarkEvalDistinctShapes cycles through more shapes than the cache
// holds, so (nearly) every Eval is a miss; "uncached" evaluates the same
// expressions without the cache, for the overhead of a miss.
func BenchmarkEvalDistinctShapes(b *testing.B) {
	exprs := distinctShapes()
	for _, cached := range []bool{true, false} {
		name := "cached"
		if !cached {
			name = "uncached"
		}
		b.Run(name, func(b *testing.B) {
			withCacheSize(b, DefaultCacheSize)
			eval := Eval
			if !cached {
				eval = evalUncached
			}
			b.ReportAllocs()
			h0, m0 := CacheStats()
			i := 0
			for b.Loop() {
				v, err := eval(exprs[i%len(exprs)], DefaultLimits)
				if err != nil {
					b.Fatal(err)
				}
				sinkF = v
				i++
			}
			if cached {
				reportHitRate(b, h0, m0)
			}
		})
	}
}

func reportHitRate(b *testing.B, h0, m0 uint64) {
	h1, m1 := CacheStats()
	if n := h1 - h0 + m1 - m0; n > 0 {
		b.ReportMetric(100*float64(h1-h0)/float64(n), "hit%")
	}
}

// BenchmarkEvalRawGovaluate is the baseline: govaluate's own lexer and parser
// plus Evaluate on the same expressions (which it computes differently where
// the grammars differ, e.g. "power").
func BenchmarkEvalRawGovaluate(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				e, err := govaluate.NewEvaluableExpression(bc.expr)
				if err != nil {
					b.Fatal(err)
				}
				v, err := e.Evaluate(nil)
				if err != nil {
					b.Fatal(err)
				}
				sinkF = v.(float64)
			}
		})
	}
}

func BenchmarkExprEval(b *testing.B) {
	for _, bc := range benchExprs {
		b.Run(bc.name, func(b *testing.B) {
			e, err := Compile(bc.expr, DefaultLimits)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				v, err := e.Eval()
				if err != nil {
					b.Fatal(err)
				}
				sinkF = v
			}
		})
	}
}

func BenchmarkCheckRejectDeep(b *testing.B) {
	expr := ""
	for range 2000 {
		expr += "("
	}
	b.ReportAllocs()
	for b.Loop() {
		if Check(expr, DefaultLimits) == nil {
			b.Fatal("accepted")
		}
	}
}
