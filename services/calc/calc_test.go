package calc

import (
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/casbin/govaluate"
)

func TestEvalValues(t *testing.T) {
	tests := []struct {
		expr string
		want float64
	}{
		// literals
		{"0", 0},
		{"42", 42},
		{"  7  ", 7},
		{"3.25", 3.25},
		{".5", 0.5},
		{"5.", 5},
		{"007", 7},
		{"1e3", 1000},
		{"1E3", 1000},
		{"1.5E-2", 0.015},
		{"2.5e+2", 250},
		{".5e1", 5},
		{"1e-400", 0}, // underflows to 0 like Python
		{"123456789012345678901234567890", 1.2345678901234568e29},
		{"1.7976931348623157e308", math.MaxFloat64},
		// precedence
		{"1 + 2 * 3", 7},
		{"(1 + 2) * 3", 9},
		{"4 * (2 + 3) - 7 / 2", 16.5},
		{"2 + 3 * 4 ** 2", 50},
		{"2 * 3 ** 2", 18},
		{"10 - 4 / 2", 8},
		{"10 % 4 * 3", 6},
		{"1 + 10 % 4", 3},
		// associativity
		{"1 - 2 - 3", -4},
		{"1 - (2 - 3)", 2},
		{"2 - 3 + 4", 3},
		{"100 / 10 / 5", 2},
		{"100 / 10 / 5 * 2", 4},
		{"2 / 3 * 4", 2.0 / 3 * 4},
		{"17 % 10 % 4", 3},
		{"2 ** 3 ** 2", 512},
		{"(2 ** 3) ** 2", 64},
		{"2 ^ 3 ^ 2", 512},
		{"2 ^ 3 ** 2", 512},
		{"2 ** 2 ** 2 ** 2", 65536},
		{"1 - 2 - 3 - 4 - 5", -13},
		{"2 * 3 - 4 * 5 - 6", -20},
		{"1 - 2 * 3 - 4 / 2 - 1", -8},
		// unary
		{"-3", -3},
		{"+3", 3},
		{"- 3", -3},
		{"--3", 3},
		{"- - - 3", -3},
		{"+-+-3", 3},
		{"-2 ** 2", -4},
		{"(-2) ** 2", 4},
		{"-2 ** -2", -0.25},
		{"2 ** -1", 0.5},
		{"2 ** -2 ** 2", 0.0625},
		{"2 ** - 2 ** 2", 0.0625},
		{"-2 ** 3 ** 2", -512},
		{"2*-3", -6},
		{"2 - -3", 5},
		{"2--3", 5},
		{"1++2", 3},
		{"-(2 + 3) * 4", -20},
		{"-(-(-(1)))", -1},
		{"-(2 ** 2) ** 2", -16},
		{"(-(2 ** 2)) ** 2", 16},
		{"3 * -2 ** 2", -12},
		{"-3 % 2", -1},
		// modulo follows math.Mod: sign of the dividend, works on floats
		{"7 % 3", 1},
		{"-7 % 3", -1},
		{"7 % -3", 1},
		{"-7 % -3", -1},
		{"5.5 % 2", 1.5},
		{"-5.5 % 2", -1.5},
		{"0.3 % 0.1", math.Mod(0.3, 0.1)},
		// division is always float division
		{"7 / 2", 3.5},
		{"1 / 3", 1.0 / 3},
		{"-7 / 2", -3.5},
		// nesting
		{"((((1))))", 1},
		{"((2 + 3) * (4 - 1)) / (1 + 2)", 5},
		{"(1 + (2 * (3 + (4 * (5 + 6)))))", 95},
		{"2 ** (1 + 1) ** 2", 16},
		{"(8 - 2) / (1 + 2) ** 2 % 5", 6.0 / 9},
		// whitespace
		{"\t1\n+\r2\v*\f3 ", 7},
		// hidden infinities that are not divisions by zero follow IEEE 754
		{"1 / 10 ** 400", 0},
		{"2 ** -2000", 0},
		{"(10 ** 400) ** 0", 1},
		// big but finite
		{"9 ** 9 ** 2", math.Pow(9, 81)},
		{"1e308 * 1.5 / 2", 1e308 * 1.5 / 2},
		{"0 ** 0", 1},
		{"0 ** 2", 0},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := Eval(tc.expr, DefaultLimits)
			if err != nil {
				t.Fatalf("Eval(%q) error: %v", tc.expr, err)
			}
			if !closeEnough(got, tc.want) {
				t.Fatalf("Eval(%q) = %v, want %v", tc.expr, got, tc.want)
			}
			if err := Check(tc.expr, DefaultLimits); err != nil {
				t.Fatalf("Check(%q) = %v", tc.expr, err)
			}
			e, err := Compile(tc.expr, DefaultLimits)
			if err != nil {
				t.Fatalf("Compile(%q) error: %v", tc.expr, err)
			}
			for range 2 { // compiled expressions are reusable
				if got2, err := e.Eval(); err != nil || got2 != got {
					t.Fatalf("Compile(%q).Eval() = %v, %v; Eval gave %v", tc.expr, got2, err, got)
				}
			}
			if ref, class := refEval(tc.expr); class != refOK || !closeEnough(ref, got) {
				t.Fatalf("reference evaluator: %v (class %d), Eval: %v", ref, class, got)
			}
		})
	}
}

func TestNegativeZero(t *testing.T) {
	for _, expr := range []string{"-0", "-(0)", "-0 * 1", "-(0 ** 2)", "-0.0 ** 2"} {
		got, err := Eval(expr, DefaultLimits)
		if err != nil || got != 0 || !math.Signbit(got) {
			t.Errorf("Eval(%q) = %v, %v; want -0", expr, got, err)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		expr string
		kind Kind
		msg  string
		pos  int
	}{
		{"", ErrSyntax, "empty expression", 0},
		{"   ", ErrSyntax, "empty expression", 0},
		{"1 +", ErrSyntax, `operator "+" at position 2 needs a right operand`, 2},
		{"2 **", ErrSyntax, `operator "**" at position 2 needs a right operand`, 2},
		{"-", ErrSyntax, `operator "-" at position 0 needs a right operand`, 0},
		{"* 2", ErrSyntax, `operator "*" at position 0 needs a left operand`, 0},
		{"1 * * 2", ErrSyntax, `operator "*" at position 4 needs a left operand`, 4},
		{"(* 2)", ErrSyntax, `operator "*" at position 1 needs a left operand`, 1},
		{"2 + ^3", ErrSyntax, `operator "^" at position 4 needs a left operand`, 4},
		{"2 *** 3", ErrSyntax, `operator "*" at position 4 needs a left operand`, 4},
		{"(1 +)", ErrSyntax, `operator "+" at position 3 needs a right operand`, 3},
		{"(", ErrSyntax, "unbalanced parenthesis at position 0", 0},
		{"(1 + 2", ErrSyntax, "unbalanced parenthesis at position 0", 0},
		{"((1) + 2", ErrSyntax, "unbalanced parenthesis at position 0", 0},
		{"1 + (2 * (3)", ErrSyntax, "unbalanced parenthesis at position 4", 4},
		{")", ErrSyntax, "unbalanced parenthesis at position 0", 0},
		{"1 + 2)", ErrSyntax, "unbalanced parenthesis at position 5", 5},
		{"(1))", ErrSyntax, "unbalanced parenthesis at position 3", 3},
		{"()", ErrSyntax, "empty parentheses at position 0", 0},
		{"1 + ()", ErrSyntax, "empty parentheses at position 4", 4},
		{"1 2", ErrSyntax, `missing operator before "2" at position 2`, 2},
		{"2 (3)", ErrSyntax, `missing operator before "(" at position 2`, 2},
		{"(1)(2)", ErrSyntax, `missing operator before "(" at position 3`, 3},
		{"(1 2)", ErrSyntax, `missing operator before "2" at position 3`, 3},
		{".", ErrSyntax, `malformed number "." at position 0`, 0},
		{"1 + .e5", ErrSyntax, `malformed number "." at position 4`, 4},
		{"1.2.3", ErrSyntax, `malformed number "1.2.3" at position 0`, 0},
		{"1..2", ErrSyntax, `malformed number "1..2" at position 0`, 0},
		{"1e5.5", ErrSyntax, `malformed number "1e5.5" at position 0`, 0},
		{"1e", ErrSyntax, `malformed number "1e" at position 0: exponent has no digits`, 0},
		{"2 * 1e+", ErrSyntax, `malformed number "1e+" at position 4: exponent has no digits`, 4},
		{"1e999", ErrNonFinite, `number "1e999" at position 0 is too large for float64`, 0},
		{"1 + 1.8e308", ErrNonFinite, `number "1.8e308" at position 4 is too large for float64`, 4},
		// not allowed
		{"2 + x", ErrNotAllowed, `unexpected character "x" at position 4`, 4},
		{"sqrt(4)", ErrNotAllowed, `unexpected character "s" at position 0`, 0},
		{"0x1F", ErrNotAllowed, `unexpected character "x" at position 1`, 1},
		{"1e3e4", ErrNotAllowed, `unexpected character "e" at position 3`, 3},
		{"'a'", ErrNotAllowed, `unexpected character "'" at position 0`, 0},
		{`"a"`, ErrNotAllowed, `unexpected character "\"" at position 0`, 0},
		{"1 == 1", ErrNotAllowed, `unexpected character "=" at position 2`, 2},
		{"1 < 2", ErrNotAllowed, `unexpected character "<" at position 2`, 2},
		{"1 && 2", ErrNotAllowed, `unexpected character "&" at position 2`, 2},
		{"1 || 2", ErrNotAllowed, `unexpected character "|" at position 2`, 2},
		{"!1", ErrNotAllowed, `unexpected character "!" at position 0`, 0},
		{"~1", ErrNotAllowed, `unexpected character "~" at position 0`, 0},
		{"1 ? 2 : 3", ErrNotAllowed, `unexpected character "?" at position 2`, 2},
		{"1, 2", ErrNotAllowed, `unexpected character "," at position 1`, 1},
		{"[x]", ErrNotAllowed, `unexpected character "[" at position 0`, 0},
		{"1 << 2", ErrNotAllowed, `unexpected character "<" at position 2`, 2},
		{"7 // 2", ErrNotAllowed, `floor division "//" at position 2 is not supported`, 2},
		{"1 + é", ErrNotAllowed, `unexpected character "é" at position 4`, 4},
		{"1\u00a0+ 1", ErrNotAllowed, `unexpected character "\u00a0" at position 1`, 1},
		{"1 + \xff", ErrNotAllowed, `unexpected character "\xff" at position 4`, 4},
		{"1 + 2 x", ErrNotAllowed, `unexpected character "x" at position 6`, 6},
		// division by zero
		{"1 / 0", ErrDivByZero, "division by zero at position 2", 2},
		{"0 / 0", ErrDivByZero, "division by zero at position 2", 2},
		{"5 % 0", ErrDivByZero, "division by zero (modulo) at position 2", 2},
		{"1 / (2 - 2)", ErrDivByZero, "division by zero at position 2", 2},
		{"1 + 2 / 0.0", ErrDivByZero, "division by zero at position 6", 6},
		{"1 / (1 / 0)", ErrDivByZero, "division by zero at position 7", 7},
		{"3 % (1 % 0)", ErrDivByZero, "division by zero (modulo) at position 7", 7},
		{"(0 / 0) ** 0", ErrDivByZero, "division by zero at position 3", 3},
		{"1 ** (1 / 0)", ErrDivByZero, "division by zero at position 8", 8},
		{"0 ** -1", ErrDivByZero, "division by zero (zero raised to a negative power) at position 2", 2},
		{"(1 - 1) ** -2", ErrDivByZero, "division by zero (zero raised to a negative power) at position 8", 8},
		{"1 / (0 ** -1)", ErrDivByZero, "division by zero (zero raised to a negative power) at position 7", 7},
		{"(1e308 * 10) - 1 / 0", ErrDivByZero, "division by zero at position 17", 17},
		// non-finite results
		{"9**9**9**9", ErrNonFinite, "result overflows float64", -1},
		{"1e308 * 10", ErrNonFinite, "result overflows float64", -1},
		{"-1e308 * 10", ErrNonFinite, "result overflows float64", -1},
		{"10 ** 400", ErrNonFinite, "result overflows float64", -1},
		{"2 ** 1024", ErrNonFinite, "result overflows float64", -1},
		{"1 / 1e-320", ErrNonFinite, "result overflows float64", -1},
		{"1e308 * 10 - 1e308 * 10", ErrNonFinite, "result is not a number (NaN): undefined operation, e.g. a negative number raised to a fractional power, or an overflowed intermediate value", -1},
		{"(-8) ** (1 / 3)", ErrNonFinite, "result is not a number (NaN): undefined operation, e.g. a negative number raised to a fractional power, or an overflowed intermediate value", -1},
		{"(1e308 * 10) % 2", ErrNonFinite, "result is not a number (NaN): undefined operation, e.g. a negative number raised to a fractional power, or an overflowed intermediate value", -1},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := Eval(tc.expr, DefaultLimits)
			assertError(t, "Eval", err, tc.kind, tc.msg, tc.pos)

			checkErr := Check(tc.expr, DefaultLimits)
			e, compileErr := Compile(tc.expr, DefaultLimits)
			if tc.kind == ErrDivByZero || (tc.kind == ErrNonFinite && tc.pos < 0) {
				// Evaluation errors: the expression itself is valid.
				if checkErr != nil || compileErr != nil {
					t.Fatalf("Check = %v, Compile = %v; want both nil", checkErr, compileErr)
				}
				_, err := e.Eval()
				assertError(t, "Expr.Eval", err, tc.kind, tc.msg, tc.pos)
			} else {
				assertError(t, "Check", checkErr, tc.kind, tc.msg, tc.pos)
				assertError(t, "Compile", compileErr, tc.kind, tc.msg, tc.pos)
			}
			_, class := refEval(tc.expr)
			if class != classify(err) {
				t.Fatalf("reference evaluator class %d, ours %d", class, classify(err))
			}
		})
	}
}

func assertError(t *testing.T, what string, err error, kind Kind, msg string, pos int) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want %v %q", what, kind, msg)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: error %T %v is not a *calc.Error", what, err, err)
	}
	if e.Kind != kind || e.Msg != msg || e.Pos != pos || err.Error() != msg {
		t.Fatalf("%s: got {%v %q pos %d}, want {%v %q pos %d}", what, e.Kind, e.Msg, e.Pos, kind, msg, pos)
	}
	if !errors.Is(err, kind) {
		t.Fatalf("%s: errors.Is(err, %v) = false", what, kind)
	}
	for k := ErrSyntax; k <= ErrInternal; k++ {
		if k != kind && errors.Is(err, k) {
			t.Fatalf("%s: errors.Is(err, %v) = true", what, k)
		}
	}
}

func TestLimits(t *testing.T) {
	deepParens := func(n int) string { return strings.Repeat("(", n) + "1" + strings.Repeat(")", n) }
	tests := []struct {
		name string
		expr string
		lim  Limits
		kind Kind
		msg  string
		pos  int
	}{
		{"too long", strings.Repeat("1+", 2499) + "1", DefaultLimits, ErrTooLong, "expression is 4999 bytes, limit is 4096", -1},
		{"too long beats everything", strings.Repeat("x", 5000), DefaultLimits, ErrTooLong, "expression is 5000 bytes, limit is 4096", -1},
		{"custom length", "1 + 2", Limits{MaxLen: 4}, ErrTooLong, "expression is 5 bytes, limit is 4", -1},
		{"too many tokens", strings.Repeat("1+", 600) + "1", DefaultLimits, ErrTooLong, "expression has more than 1024 tokens (limit reached at position 1024)", 1024},
		{"custom tokens", "1 + 2 + 3", Limits{MaxTokens: 3}, ErrTooLong, "expression has more than 3 tokens (limit reached at position 6)", 6},
		{"10000 parens, default limits", deepParens(10000), DefaultLimits, ErrTooLong, "expression is 20001 bytes, limit is 4096", -1},
		{"10000 parens", deepParens(10000), Limits{MaxLen: 1 << 20}, ErrTooDeep, "nesting depth exceeds 64 at position 64", 64},
		{"10000 unary minus", strings.Repeat("-", 10000) + "1", Limits{MaxLen: 1 << 20}, ErrTooDeep, "nesting depth exceeds 64 at position 64", 64},
		{"10000 spaced unary minus", strings.Repeat("- ", 10000) + "1", Limits{MaxLen: 1 << 20}, ErrTooDeep, "nesting depth exceeds 64 at position 128", 128},
		{"unary and parens add up", strings.Repeat("-(", 40) + "1" + strings.Repeat(")", 40), DefaultLimits, ErrTooDeep, "nesting depth exceeds 64 at position 64", 64},
		{"power chain", "2" + strings.Repeat("**2", 100), DefaultLimits, ErrTooDeep, "nesting depth exceeds 64 at position 193", 193},
		{"65 parens", deepParens(65), DefaultLimits, ErrTooDeep, "nesting depth exceeds 64 at position 64", 64},
		{"custom depth", "((1))", Limits{MaxDepth: 1}, ErrTooDeep, "nesting depth exceeds 1 at position 1", 1},
		{"depth cap", deepParens(1001), Limits{MaxDepth: 1 << 30, MaxLen: 1 << 20, MaxTokens: 1 << 20}, ErrTooDeep, "nesting depth exceeds 1000 at position 1000", 1000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Eval(tc.expr, tc.lim)
			assertError(t, "Eval", err, tc.kind, tc.msg, tc.pos)
			assertError(t, "Check", Check(tc.expr, tc.lim), tc.kind, tc.msg, tc.pos)
		})
	}

	// Exactly at the limits is fine.
	ok := []struct {
		name string
		expr string
		lim  Limits
		want float64
	}{
		{"64 parens", deepParens(64), DefaultLimits, 1},
		{"64 unary minus", strings.Repeat("-", 64) + "1", DefaultLimits, 1},
		{"max length", strings.Repeat(" ", 4095) + "1", DefaultLimits, 1},
		{"max tokens", strings.Repeat("1+", 511) + "1", DefaultLimits, 512},
		{"zero limits mean defaults", deepParens(64), Limits{}, 1},
		{"negative limits mean defaults", deepParens(64), Limits{-1, -1, -1}, 1},
		{"deep with raised limits", deepParens(1000), Limits{MaxDepth: 1000, MaxLen: 1 << 20, MaxTokens: 1 << 20}, 1},
		{"long power chain with raised limits", "1" + strings.Repeat("**1", 999), Limits{MaxDepth: 1000, MaxLen: 1 << 20, MaxTokens: 1 << 20}, 1},
		{"1000 needed parens with raised limits", strings.Repeat("1-(", 999) + "1" + strings.Repeat(")", 999), Limits{MaxDepth: 1000, MaxLen: 1 << 20, MaxTokens: 1 << 20}, 0},
		{"long sum with raised limits", "1" + strings.Repeat("+1", 99999), Limits{MaxLen: 1 << 20, MaxTokens: 1 << 20}, 100000},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Eval(tc.expr, tc.lim)
			if err != nil || got != tc.want {
				t.Fatalf("Eval = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestBigExponentsAreFast(t *testing.T) {
	// The seed froze on this (Python big integers). Here it is a handful of
	// math.Pow calls. Timing is not asserted; a hang would time the test out.
	for _, expr := range []string{"9**9**9**9", "9^9^9^9", "(9**9**9**9) - (9**9**9**9)", "99999999**99999999**99999999"} {
		_, err := Eval(expr, DefaultLimits)
		if !errors.Is(err, ErrNonFinite) {
			t.Errorf("Eval(%q) error = %v, want ErrNonFinite", expr, err)
		}
	}
}

func TestKind(t *testing.T) {
	if got := ErrTooLong.String(); got != "expression too long" {
		t.Errorf("ErrTooLong.String() = %q", got)
	}
	if got := Kind(0).String(); got != "calc.Kind(0)" {
		t.Errorf("Kind(0).String() = %q", got)
	}
	if got := Kind(99).Error(); got != "calc.Kind(99)" {
		t.Errorf("Kind(99).Error() = %q", got)
	}
	for k := ErrSyntax; k <= ErrInternal; k++ {
		if strings.HasPrefix(k.String(), "calc.Kind") {
			t.Errorf("kind %d has no name", int(k))
		}
	}
}

func TestEvalOperation(t *testing.T) {
	tests := []struct {
		op       string
		operands []float64
		want     float64
	}{
		{"addition", []float64{1, 2}, 3},
		{"addition", []float64{1, 2, 3, 4.5}, 10.5},
		{"subtraction", []float64{10, 3, 2}, 5},
		{"multiplication", []float64{2, 3, 4}, 24},
		{"division", []float64{100, 10, 4}, 2.5},
		{"division", []float64{7, 2}, 3.5},
		{"power", []float64{2, 3, 2}, 64}, // folded left to right, unlike "2**3**2"
		{"power", []float64{2, -1}, 0.5},
		{"power", []float64{0, 0}, 1},
		{"modulo", []float64{17, 10, 4}, 3},
		{"modulo", []float64{-7, 3}, -1},
		{"modulo", []float64{5.5, 2}, 1.5},
	}
	for _, tc := range tests {
		t.Run(tc.op+strconv.Itoa(len(tc.operands)), func(t *testing.T) {
			got, err := EvalOperation(tc.op, tc.operands)
			if err != nil || got != tc.want {
				t.Fatalf("EvalOperation(%q, %v) = %v, %v; want %v", tc.op, tc.operands, got, err, tc.want)
			}
		})
	}

	errs := []struct {
		op       string
		operands []float64
		kind     Kind
		msg      string
	}{
		{"sqrt", []float64{1, 2}, ErrUnknownOp, `unknown operation "sqrt" (want one of addition, subtraction, multiplication, division, power, modulo)`},
		{"Addition", []float64{1, 2}, ErrUnknownOp, `unknown operation "Addition" (want one of addition, subtraction, multiplication, division, power, modulo)`},
		{"", nil, ErrUnknownOp, `unknown operation "" (want one of addition, subtraction, multiplication, division, power, modulo)`},
		{"addition", nil, ErrOperandCount, `operation "addition" needs at least 2 operands, got 0`},
		{"addition", []float64{1}, ErrOperandCount, `operation "addition" needs at least 2 operands, got 1`},
		{"addition", []float64{1, math.Inf(1)}, ErrNonFinite, "operand 1 (+Inf) is not finite"},
		{"addition", []float64{math.NaN(), 1}, ErrNonFinite, "operand 0 (NaN) is not finite"},
		{"division", []float64{1, 2, 0}, ErrDivByZero, "division by zero (operand 2 is 0)"},
		{"modulo", []float64{1, 0}, ErrDivByZero, "division by zero (operand 1 is 0)"},
		{"power", []float64{0, -1}, ErrDivByZero, "division by zero (zero raised to a negative power at operand 1)"},
		{"multiplication", []float64{1e308, 10}, ErrNonFinite, "result overflows float64 after operand 1"},
		{"power", []float64{1e308, 10, 0}, ErrNonFinite, "result overflows float64 after operand 1"},
		{"power", []float64{-8, 0.5}, ErrNonFinite, "result is not a number (NaN) after operand 1"},
		{"subtraction", []float64{-1e308, 1e308}, ErrNonFinite, "result overflows float64 after operand 1"},
	}
	for _, tc := range errs {
		t.Run(tc.op+"/"+tc.msg, func(t *testing.T) {
			_, err := EvalOperation(tc.op, tc.operands)
			assertError(t, "EvalOperation", err, tc.kind, tc.msg, -1)
		})
	}
}

func TestOperations(t *testing.T) {
	ops := Operations()
	want := []string{"addition", "subtraction", "multiplication", "division", "power", "modulo"}
	if strings.Join(ops, ",") != strings.Join(want, ",") {
		t.Fatalf("Operations() = %v", ops)
	}
	ops[0] = "changed"
	if Operations()[0] != "addition" {
		t.Fatal("Operations() returned shared storage")
	}
	for _, op := range want {
		if _, err := EvalOperation(op, []float64{6, 3}); err != nil {
			t.Errorf("EvalOperation(%q) = %v", op, err)
		}
	}
}

func TestExprConcurrent(t *testing.T) {
	exprs := map[string]float64{"4 * (2 + 3) - 7 / 2": 16.5, "2 ** 3 ** 2": 512, "1 / (1 / (3 - 1))": 2}
	var wg sync.WaitGroup
	for s, want := range exprs {
		e, err := Compile(s, DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		bad, err := Compile("1 / (1 / (3 - 3))", DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 {
			wg.Go(func() {
				for range 200 {
					if got, err := e.Eval(); err != nil || got != want {
						t.Errorf("%q: %v, %v", s, got, err)
						return
					}
					if _, err := bad.Eval(); !errors.Is(err, ErrDivByZero) {
						t.Errorf("bad: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
}

// TestGovaluateDifferences pins down the raw govaluate behaviour that this
// package corrects or avoids, so that an upgrade that changes it is noticed.
func TestGovaluateDifferences(t *testing.T) {
	raw := func(s string) (any, error) {
		e, err := govaluate.NewEvaluableExpression(s)
		if err != nil {
			return nil, err
		}
		return e.Evaluate(nil)
	}
	tests := []struct {
		expr    string
		rawWant any // nil: raw govaluate fails to parse
		ours    float64
	}{
		{"2 ** 3 ** 2", 64.0, 512},  // govaluate: ** is left-associative
		{"-2 ** 2", 4.0, -4},        // govaluate: prefix minus binds tighter than **
		{"2 ^ 3", 1.0, 8},           // govaluate: ^ is bitwise XOR
		{"2*-3", nil, -6},           // govaluate lexes "*-" as one unknown operator
		{"- -2", nil, 2},            // govaluate rejects a prefix after a prefix
		{"1e3", nil, 1000},          // govaluate has no exponent notation
		{"-7 % 3", -1.0, -1},        // both: math.Mod (Python would give 2)
		{"7 / 2", 3.5, 3.5},         // both: float division
		{"1 - 2 - 3 - 4", -8.0, -8}, // both: left-associative
		{"2 / 3 * 4", 2.0 / 3 * 4, 2.0 / 3 * 4},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := raw(tc.expr)
			if tc.rawWant == nil {
				if err == nil {
					t.Errorf("raw govaluate accepted %q = %v", tc.expr, got)
				}
			} else if err != nil || got != tc.rawWant {
				t.Errorf("raw govaluate %q = %v, %v; want %v", tc.expr, got, err, tc.rawWant)
			}
			if ours, err := Eval(tc.expr, DefaultLimits); err != nil || ours != tc.ours {
				t.Errorf("Eval(%q) = %v, %v; want %v", tc.expr, ours, err, tc.ours)
			}
		})
	}
	// Raw govaluate returns Inf/NaN instead of failing.
	for _, s := range []string{"1 / 0", "0 / 0", "1 % 0"} {
		got, err := raw(s)
		if f, ok := got.(float64); err != nil || !ok || !(math.IsInf(f, 0) || math.IsNaN(f)) {
			t.Errorf("raw govaluate %q = %v, %v; expected a non-finite value", s, got, err)
		}
	}
}

// genExpr writes a random expression of the grammar (with random spacing,
// redundant parentheses, unary operators and number formats) to b.
func genExpr(r *rand.Rand, b *strings.Builder, depth int) {
	sp := func() {
		switch r.IntN(4) {
		case 0:
			b.WriteByte(' ')
		case 1:
			b.WriteString("  ")
		}
	}
	if depth <= 0 || r.IntN(4) == 0 {
		// leaf, possibly with unary signs
		for r.IntN(4) == 0 {
			b.WriteByte("+-"[r.IntN(2)])
			sp()
		}
		switch r.IntN(8) {
		case 0:
			b.WriteString(strconv.Itoa(r.IntN(3))) // zeros and ones: divisions by zero, 0**-x
		case 1:
			b.WriteString(strconv.FormatFloat(r.Float64()*100, 'f', r.IntN(4), 64))
		case 2:
			b.WriteString(strconv.FormatFloat(r.NormFloat64()*1e3, 'e', r.IntN(5), 64))
		case 3:
			b.WriteString("." + strconv.Itoa(r.IntN(1000)))
		case 4:
			b.WriteString(strconv.Itoa(r.IntN(100000)) + ".")
		case 5:
			b.WriteString(strconv.Itoa(r.IntN(300)) + "E" + strconv.Itoa(r.IntN(20)-10))
		default:
			b.WriteString(strconv.Itoa(r.IntN(20)))
		}
		return
	}
	switch r.IntN(6) {
	case 0:
		b.WriteByte('(')
		sp()
		genExpr(r, b, depth-1)
		sp()
		b.WriteByte(')')
	case 1:
		b.WriteByte("+-"[r.IntN(2)])
		sp()
		genExpr(r, b, depth-1)
	default:
		ops := []string{"+", "-", "*", "/", "%", "**", "^"}
		genExpr(r, b, depth-1)
		sp()
		b.WriteString(ops[r.IntN(len(ops))])
		sp()
		genExpr(r, b, depth-1)
	}
}

func TestDifferential(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	var classes [4]int
	for i := 0; i < n; i++ {
		var b strings.Builder
		genExpr(r, &b, 1+r.IntN(7))
		expr := b.String()
		compareWithReference(t, expr)
		_, class := refEval(expr)
		classes[class]++
	}
	t.Logf("ok %d, invalid %d, division by zero %d, non-finite %d", classes[refOK], classes[refInvalid], classes[refDivZero], classes[refNonFinite])
	if classes[refOK] < n/3 || classes[refDivZero] == 0 || classes[refNonFinite] == 0 {
		t.Errorf("generator does not cover the interesting cases: %v", classes)
	}
}

// compareWithReference checks every property the fuzz target checks.
func compareWithReference(t *testing.T, expr string) {
	t.Helper()
	got, err := Eval(expr, DefaultLimits)
	if err == nil && (math.IsInf(got, 0) || math.IsNaN(got)) {
		t.Fatalf("Eval(%q) returned non-finite %v", expr, got)
	}
	var ce *Error
	if err != nil && !errors.As(err, &ce) {
		t.Fatalf("Eval(%q) returned %T %v, not *calc.Error", expr, err, err)
	}
	if ce != nil && ce.Kind == ErrInternal {
		t.Fatalf("Eval(%q): %v", expr, err)
	}

	// the shape cache changes nothing, to the bit (the second Eval finds
	// the shape compiled, possibly by another expression of that shape)
	want0, wantErr0 := evalUncached(expr, DefaultLimits)
	if !sameResult(got, err, want0, wantErr0) {
		t.Fatalf("%q: Eval = %v, %v; without the shape cache %v, %v", expr, got, err, want0, wantErr0)
	}
	if got1, err1 := Eval(expr, DefaultLimits); !sameResult(got1, err1, want0, wantErr0) {
		t.Fatalf("%q: second Eval = %v, %v; without the shape cache %v, %v", expr, got1, err1, want0, wantErr0)
	}

	// master and slave agree
	checkErr := Check(expr, DefaultLimits)
	compiled, compileErr := Compile(expr, DefaultLimits)
	if (checkErr == nil) != (compileErr == nil) {
		t.Fatalf("%q: Check = %v but Compile = %v", expr, checkErr, compileErr)
	}
	if checkErr != nil {
		if err == nil || err.Error() != checkErr.Error() {
			t.Fatalf("%q: Check = %v but Eval = %v", expr, checkErr, err)
		}
	} else {
		got2, err2 := compiled.Eval()
		if got2 != got && !(got2 == 0 && got == 0) || (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("%q: Eval = %v, %v but Compile().Eval() = %v, %v", expr, got, err, got2, err2)
		}
	}

	if ce != nil && (ce.Kind == ErrTooLong || ce.Kind == ErrTooDeep) {
		return // the reference evaluator has no limits
	}
	want, class := refEval(expr)
	if classify(err) != class {
		t.Fatalf("%q: Eval = %v, %v (class %d); reference = %v (class %d)", expr, got, err, classify(err), want, class)
	}
	if class == refOK && !closeEnough(got, want) {
		t.Fatalf("%q: Eval = %v; reference = %v", expr, got, want)
	}
}

// TestTokenBound checks that parser.tokenBound really bounds the emitted
// token count (it is only a capacity hint, but a wrong one would cost a
// reallocation on every Eval).
func TestTokenBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		var b strings.Builder
		genExpr(r, &b, 1+r.IntN(7))
		expr := b.String()
		for _, guardAll := range []bool{false, true} {
			p := parser{src: expr, lim: DefaultLimits.normalized(), build: true}
			root := p.parse()
			if p.err != nil {
				break
			}
			for _, params := range []bool{false, true} {
				toks, _ := tokens(p.nodes, root, nil, 0, guardAll, params)
				if len(toks) > p.tokenBound() {
					t.Fatalf("%q (guardAll %v, params %v): %d tokens, bound %d", expr, guardAll, params, len(toks), p.tokenBound())
				}
			}
		}
	}
}
