// Package calc evaluates untrusted arithmetic expressions safely, on top of
// github.com/casbin/govaluate.
//
// The master runs [Check] on every submitted expression: a hand-written lexer
// and recursive-descent parser that enforces size and nesting limits and the
// grammar below, in a single pass without allocating (100-150 ns for a
// short expression) and without touching govaluate. The slave runs [Eval] (or
// [Compile] once and [Expr.Eval] many times): the same parser builds a small
// syntax tree, which is turned into a govaluate token stream and compiled with
// govaluate.NewEvaluableExpressionFromTokens, so govaluate's own lexer is
// never used and its grammar quirks never apply. [EvalOperation] evaluates the
// seed service's "operation + operand list" request format.
//
// # Grammar
//
//	expression = sum .
//	sum        = product { ( "+" | "-" ) product } .
//	product    = unary { ( "*" | "/" | "%" ) unary } .
//	unary      = ( "-" | "+" ) unary | power .
//	power      = primary [ ( "**" | "^" ) unary ] .
//	primary    = number | "(" sum ")" .
//	number     = digits [ "." [ digits ] ] [ exponent ] | "." digits [ exponent ] .
//	exponent   = ( "e" | "E" ) [ "+" | "-" ] digits .
//	digits     = digit { digit } .
//
// Whitespace (ASCII space, \t, \n, \r, \v, \f) may appear between tokens.
// "^" is accepted as a synonym for "**" (power). Note that this differs both
// from Python and from govaluate, where "^" is bitwise XOR.
//
// # Precedence and associativity
//
// This is Python's table (the seed service was written in Python), from
// loosest to tightest:
//
//	level  operators  kind                        example
//	1      + -        binary, left-associative    1 - 2 - 3 = -4
//	2      * / %      binary, left-associative    100 / 10 / 5 = 2
//	3      - +        unary (prefix)              - -3 = 3
//	4      ** ^       binary, RIGHT-associative   2 ** 3 ** 2 = 512
//	5      ( )        grouping
//
// As in Python, "**" binds tighter than a unary minus on its left but accepts
// a unary minus on its right: -2 ** 2 = -(2 ** 2) = -4, 2 ** -1 = 0.5,
// 2 ** -2 ** 2 = 2 ** -(2 ** 2) = 0.0625, and 3 * -2 ** 2 = -12.
//
// # Numbers and arithmetic
//
// Numbers are decimal only: integers, decimals (".5" and "5." are allowed)
// and exponent notation ("1e3", "1.5E-2"). Leading zeros are allowed and do
// not mean octal ("007" = 7). There is no hexadecimal, no "_" separator and no
// "inf"/"nan". Every literal is converted to the nearest float64; a literal
// that overflows float64 (e.g. "1e999") is rejected by Check with
// ErrNonFinite, one that underflows becomes 0 ("1e-400" = 0), as in Python.
//
// All arithmetic is IEEE 754 float64, exactly as govaluate does it:
//
//   - "/" is always float division: 7 / 2 = 3.5. There is no integer
//     division, and "//" is rejected (ErrNotAllowed).
//   - "%" is math.Mod: the result has the sign of the DIVIDEND and works on
//     fractions: 7 % 3 = 1, -7 % 3 = -1, 7 % -3 = 1, 5.5 % 2 = 1.5. This
//     differs from Python, where the result takes the sign of the divisor
//     (-7 % 3 = 2 in Python).
//   - "**" is math.Pow: 0 ** 0 = 1, (-8) ** (1/3) is NaN (Python would give
//     a complex number).
//   - Unary plus is the identity; unary minus negates exactly (-0 is kept).
//
// # Errors in evaluation
//
// Evaluation never panics and never returns Inf or NaN:
//
//   - A division or modulo by zero, or zero raised to a negative power,
//     fails with ErrDivByZero ("division by zero at position N", with N the
//     operator's byte offset) wherever it happens, even when IEEE 754 would
//     make it disappear later: 1 / (1 / 0) and (0 / 0) ** 0 are errors, as
//     in Python.
//   - Otherwise intermediate values follow IEEE 754: an overflow becomes
//     ±Inf, and only the final result must be finite, so 1 / 10 ** 400 = 0
//     and (10 ** 400) ** 0 = 1. A final ±Inf fails with ErrNonFinite ("result
//     overflows float64"), a final NaN (Inf - Inf, Inf % 2, a negative number
//     raised to a fractional power) with ErrNonFinite ("result is not a
//     number (NaN) ...").
//   - 9**9**9**9 is a few math.Pow calls (the result overflows and is
//     reported as such within microseconds), not a big-integer computation.
//
// # Limits
//
// [Limits] bounds the length in bytes (default 4096), the number of tokens
// (numbers, operators and parentheses; default 1024) and the nesting depth
// (default 64). The depth is the number of enclosing parentheses, unary
// operators and "**" right operands at any point, so "((1))" has depth 2,
// "- - 1" depth 2, "-(-(1))" depth 4 and "2 ** 2 ** 2" depth 2. The length is
// checked before anything else; the others are checked while parsing, so an
// expression is rejected as soon as it exceeds a limit (2000 nested
// parentheses are rejected at the 65th). MaxDepth is capped at 1000
// whatever the configuration. These limits matter: govaluate parses and
// evaluates recursively, and a Go stack overflow cannot be recovered.
//
// # Error reporting
//
// Every error is an [*Error] with a [Kind], a complete user-facing message
// and the byte position it refers to (or -1), for example:
//
//	unexpected character "x" at position 4                 ErrNotAllowed
//	floor division "//" at position 2 is not supported     ErrNotAllowed
//	unbalanced parenthesis at position 0                   ErrSyntax
//	operator "*" at position 2 needs a left operand        ErrSyntax
//	operator "+" at position 2 needs a right operand       ErrSyntax
//	missing operator before "(" at position 1              ErrSyntax
//	empty parentheses at position 0                        ErrSyntax
//	malformed number "1.2.3" at position 0                 ErrSyntax
//	empty expression                                       ErrSyntax
//	expression is 5000 bytes, limit is 4096                ErrTooLong
//	expression has more than 1024 tokens (...)             ErrTooLong
//	nesting depth exceeds 64 at position 64                ErrTooDeep
//	number "1e999" at position 0 is too large for float64  ErrNonFinite
//	division by zero at position 1                         ErrDivByZero
//	result overflows float64                               ErrNonFinite
//
// Test for a kind with errors.Is(err, calc.ErrTooLong), or get the details
// with errors.As(err, &e) where e is a *calc.Error. The HTTP layer maps
// ErrTooLong to 413, ErrInternal (a bug, never caused by input) to 500 and
// everything else to 422. When an expression has several problems, the first
// one in reading order is reported, except that the length limit is checked
// first.
//
// # How it uses govaluate, and how that differs from raw govaluate
//
// Raw govaluate.NewEvaluableExpression differs from this package in ways that
// matter for a calculator (all pinned down by TestGovaluateDifferences):
//
//   - "**" is left-associative (2 ** 3 ** 2 = 64) and prefix minus binds
//     tighter than "**" (-2 ** 2 = 4);
//   - "^" is bitwise XOR (2 ^ 3 = 1);
//   - there is no exponent notation ("1e3" is a syntax error), but there are
//     hexadecimal literals, variables, strings, dates, functions, regular
//     expressions, comparison, logical and ternary operators;
//   - adjacent operator characters form one token, so "2*-3" is an "Invalid
//     token" and "- -2" is rejected;
//   - 1/0, 0/0 and 1%0 evaluate to +Inf or NaN instead of failing;
//   - nothing limits length or nesting, and deep nesting overflows the stack.
//
// To get the grammar above out of govaluate, the syntax tree is emitted as
// govaluate tokens (NUMERIC, MODIFIER, CLAUSE, CLAUSE_CLOSE, plus FUNCTION and
// SEPARATOR for the guards below) with exactly the parentheses govaluate needs
// to build the same tree: a "**" right operand that is itself a power is
// parenthesised (2 ** (3 ** 2)), the user's redundant parentheses are dropped,
// a negated literal becomes a negative NUMERIC, and -x for any other x is
// emitted as "-1 * x" (exact in IEEE 754), which needs no parentheses where
// govaluate's prefix minus would: -2 ** 2 becomes -1 * 2 ** 2. The only
// place where a plain token stream cannot express the semantics is division
// by zero, which IEEE 754 (and govaluate) can hide inside a finite result. A
// division, modulo or power whose result could be hidden this way (it sits in
// the divisor of "/" or "%" or in an operand of "**") and whose operands are
// not literals that rule out a division by zero is emitted as a call to a
// small guard function that fails on a zero divisor (or zero base with a
// negative exponent). Elsewhere a division by zero always surfaces as a
// non-finite result; in that case the expression is evaluated once more with
// every such operation guarded, to report the division by zero rather than
// an overflow. So in the common case the token stream has no function calls.
//
// # Performance and the shape cache
//
// Compiling is what costs. Compiling an expression as above and evaluating
// it costs 20-35% less than raw govaluate's NewEvaluableExpression plus
// Evaluate on the same text (the token path skips govaluate's lexer), but
// over 80% of that time (about 2 µs for "4 * (2 + 3) - 7 / 2") is govaluate
// building its evaluation plan, and every parenthesis govaluate has to plan
// costs about as much as three binary operators. Evaluating a compiled [Expr]
// costs about 100 ns, the same as evaluating a raw govaluate expression
// (govaluate folds constant sub-expressions at compile time). Compiled
// expressions are immutable and safe for concurrent use.
//
// So the one-shot [Eval] keeps a bounded cache of compiled SHAPES, like a
// database's prepared statements. The shape of an expression is its syntax
// tree with the numbers replaced by parameters: "4 * (2 + 3) - 7 / 2" and
// "3 * (2.5 + -1) - 8 / 9" share one. Eval parses the expression as always,
// looks its shape up and evaluates the compiled shape with the expression's
// numbers as parameters, which costs about 0.4-0.7 µs for a short expression
// instead of 2 µs. Results and errors are exactly those of [Compile] followed
// by [Expr.Eval], to the bit: the compiled shape performs the same float64
// operations in the same order (what govaluate would fold at compile time, it
// computes at evaluation time), whether a number is zero (or, for an
// exponent, negative) is part of the shape where it decides whether a
// division by zero is possible, and error positions are taken from the
// expression at hand. A shape is cached the second time it is seen; the first
// time the expression is compiled with its numbers as constants, so a stream
// of expressions of distinct shapes costs only the cache lookup more (a few
// percent) and displaces nothing. The cache holds [DefaultCacheSize] shapes
// (about 16 MiB at most) and takes no lock to look one up; see
// [SetCacheSize] and [CacheStats].
package calc
