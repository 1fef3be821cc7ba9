package calc

import (
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
