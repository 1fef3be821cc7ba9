package calc

import "testing"

// FuzzEval checks, for arbitrary input, that Eval never panics and never
// returns a non-finite value or an internal error, that Check and Compile
// (master and slave) agree, that Compile().Eval() matches Eval, and that
// results and error classes match the independent reference evaluator
// (values within 1e-9 relative).
//
//	go test -fuzz=FuzzEval -fuzztime=30s ./services/calc/
func FuzzEval(f *testing.F) {
	for _, s := range []string{
		"4 * (2 + 3) - 7 / 2",
		"2 ** 3 ** 2",
		"-2 ** 2",
		"2 ** -1",
		"2^-3^2",
		"- - +-1",
		"1e3 + 1.5E-2 - .5 * 5.",
		"-7 % 3",
		"5.5 % -2",
		"1 / 0",
		"0 / 0",
		"1 / (1 / 0)",
		"(0 % 0) ** 0",
		"0 ** -1",
		"(1 - 1) ** -0.5",
		"9**9**9**9",
		"1e308 * 10",
		"1e308 * 10 - 1e308 * 10",
		"(-8) ** (1/3)",
		"1e999",
		"((((1))))",
		"(1 + 2",
		"1 + 2)",
		"()",
		"1 2",
		"x + 1",
		"1 // 2",
		"1e",
		"1.2.3",
		"\t1\n+\f2",
		"é",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		compareWithReference(t, expr)
	})
}
