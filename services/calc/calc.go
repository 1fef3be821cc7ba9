package calc

import (
	"errors"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/casbin/govaluate"
)

// Limits bounds the size of an expression. A zero or negative field means the
// default (see DefaultLimits). MaxDepth is additionally capped at 1000, which
// keeps govaluate's recursive parser and evaluator far away from the Go stack
// limit whatever the configuration.
type Limits struct {
	MaxLen    int // maximum length in bytes
	MaxDepth  int // maximum nesting depth of "(", unary +/- and "**" right operands
	MaxTokens int // maximum number of tokens (numbers, operators, parentheses)
}

const (
	defaultMaxLen    = 4096
	defaultMaxDepth  = 64
	defaultMaxTokens = 1024
	maxDepthCap      = 1000
)

// DefaultLimits are the limits used by the calclab services.
var DefaultLimits = Limits{MaxLen: defaultMaxLen, MaxDepth: defaultMaxDepth, MaxTokens: defaultMaxTokens}

func (l Limits) normalized() Limits {
	if l.MaxLen <= 0 {
		l.MaxLen = defaultMaxLen
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxDepth > maxDepthCap {
		l.MaxDepth = maxDepthCap
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = defaultMaxTokens
	}
	return l
}

// Check validates expr against the limits and the grammar without evaluating
// it and without calling govaluate. It is cheap (a single pass, no
// allocations unless it fails) and is what the master runs on every submitted
// expression. Check(expr, lim) returns nil exactly when Compile(expr, lim)
// succeeds; Eval can then still fail, but only with ErrDivByZero or
// ErrNonFinite.
func Check(expr string, lim Limits) error {
	p := parser{src: expr, lim: lim.normalized()}
	p.parse()
	if p.err != nil {
		return p.err
	}
	return nil
}

// Expr is a compiled expression. It is immutable and safe for concurrent use.
type Expr struct {
	src   string
	lim   Limits
	ge    *govaluate.EvaluableExpression
	risky bool
}

// Compile checks expr (exactly like Check) and compiles it into a govaluate
// expression that implements the grammar described in the package
// documentation.
func Compile(expr string, lim Limits) (*Expr, error) {
	lim = lim.normalized()
	ge, risky, err := compile(expr, lim, false, nil)
	if err != nil {
		return nil, err
	}
	return &Expr{src: expr, lim: lim, ge: ge, risky: risky}, nil
}

// Eval evaluates the compiled expression. It never panics and never returns
// Inf or NaN: a non-finite result is reported as ErrNonFinite, a division or
// modulo by zero (or zero raised to a negative power) as ErrDivByZero.
func (e *Expr) Eval() (float64, error) {
	if e == nil || e.ge == nil {
		return 0, &Error{Kind: ErrInternal, Pos: -1, Msg: "internal error: Eval called on a nil or zero Expr"}
	}
	return evaluate(e.ge, e.src, e.lim, e.risky)
}

// Eval checks, compiles and evaluates expr in one go; it is equivalent to
// Compile followed by Expr.Eval (same result to the bit, same errors), without
// keeping the compiled form. It keeps the compiled form of the expression's
// SHAPE instead, the expression with its numbers replaced by parameters, in a
// bounded cache (see SetCacheSize), so that evaluating many expressions that
// differ only in their numbers compiles once.
func Eval(expr string, lim Limits) (float64, error) {
	lim = lim.normalized()
	c := shapes.Load()
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	if c == nil {
		sc.stripe.misses.Add(1)
		return evalConst(expr, lim, sc)
	}
	return sc.evalShape(c, expr, lim)
}

// evalUncached is Eval without the shape cache: it compiles expr with its
// literals as constants, like Compile.
func evalUncached(expr string, lim Limits) (float64, error) {
	lim = lim.normalized()
	sc := scratchPool.Get().(*scratch)
	defer sc.release()
	return evalConst(expr, lim, sc)
}

func evalConst(expr string, lim Limits, sc *scratch) (float64, error) {
	ge, risky, err := compile(expr, lim, false, sc)
	if err != nil {
		return 0, err
	}
	return evaluate(ge, expr, lim, risky)
}

// scratch holds the buffers of a one-shot Eval, so that they can be reused:
// once Eval has its result, neither govaluate nor this package references
// them any more (govaluate's stages capture token values, not the token
// slice; a cached compiled shape gets its own copy of the tokens).
type scratch struct {
	nodes  []node
	toks   []govaluate.ExpressionToken
	key    []byte        // shape key (see cache.go)
	params literalParams // literal values, by parameter index
	pos    []int32       // byte offsets of "/", "%" and "**", by position index
	stripe *statStripe
}

var scratchPool = sync.Pool{New: func() any { return &scratch{stripe: newStatStripe()} }}

// maxPooled bounds the buffers kept in the pool (in elements).
const maxPooled = 1024

func (sc *scratch) release() {
	clear(sc.toks) // do not keep the token values alive
	sc.toks = sc.toks[:0]
	if cap(sc.nodes) > maxPooled || cap(sc.toks) > maxPooled {
		return
	}
	scratchPool.Put(sc)
}

// evalShape is Eval with the shape cache c.
func (sc *scratch) evalShape(c *shapeCache, expr string, lim Limits) (v float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = 0, newError(ErrInternal, -1, "internal error: panic while evaluating: %v", r)
		}
	}()
	p := parser{src: expr, lim: lim, build: true, nodes: sc.nodes[:0]}
	root := p.parse()
	sc.nodes = p.nodes
	if p.err != nil {
		return 0, p.err
	}
	if len(p.nodes) > maxShapeNodes {
		sc.stripe.misses.Add(1)
		ge, risky, err := compileAST(p.nodes, root, p.tokenBound(), false, false, sc)
		if err != nil {
			return 0, err
		}
		return evaluate(ge, expr, lim, risky)
	}
	sc.shape(p.nodes, root)
	ge, risky, params, err := sc.compiled(c, p.nodes, root, p.tokenBound(), false)
	if err != nil {
		return 0, err
	}
	f, rerr := sc.run(ge, params)
	if rerr == nil {
		return f, nil
	}
	if !risky || rerr.Kind != ErrNonFinite {
		return 0, rerr
	}
	// Some division, modulo or power was evaluated without a guard; run the
	// expression again with all of them guarded (see evaluate).
	sc.key[0] = keyGuardAll
	if g, _, gparams, cerr := sc.compiled(c, p.nodes, root, p.tokenBound(), true); cerr == nil {
		if _, gerr := sc.run(g, gparams); gerr != nil && gerr.Kind == ErrDivByZero {
			return 0, gerr
		}
	}
	return 0, rerr
}

// compiled returns the compiled form of the AST, of shape sc.key: from the
// cache, or compiled in params mode and inserted into the cache, or, the
// first time the shape is seen (see shapeCache.admit), compiled with
// constants as without the cache (params false). In that last case ge uses
// sc's buffers.
func (sc *scratch) compiled(c *shapeCache, nodes []node, root int32, tokenBound int, guardAll bool) (ge *govaluate.EvaluableExpression, risky, params bool, err error) {
	e, h := c.lookup(sc.key)
	if e != nil {
		sc.stripe.hits.Add(1)
		return e.ge, e.risky, true, nil
	}
	sc.stripe.misses.Add(1)
	if !c.admit(h) {
		ge, risky, err = compileAST(nodes, root, tokenBound, guardAll, false, sc)
		return ge, risky, false, err
	}
	ge, risky, err = compileAST(nodes, root, tokenBound, guardAll, true, sc)
	if err != nil {
		return nil, false, false, err
	}
	c.insert(&shapeEntry{key: string(sc.key), hash: h, ge: ge, cost: len(sc.toks), risky: risky})
	return ge, risky, true, nil
}

// run evaluates ge, compiled in params mode or not, with the literals in
// sc.params, and turns its outcome into a finite float64 or an *Error.
func (sc *scratch) run(ge *govaluate.EvaluableExpression, params bool) (float64, *Error) {
	var res any
	var err error
	if params {
		res, err = ge.Eval(&sc.params)
	} else {
		res, err = ge.Eval(nil)
	}
	if err != nil {
		return 0, sc.asError(err)
	}
	return result(res)
}

// asError is asError, and also resolves the position index of a guard
// compiled in params mode with sc.pos.
func (sc *scratch) asError(err error) *Error {
	if g, ok := err.(*guardError); ok && int(g.ord) < len(sc.pos) {
		return divByZeroError(g.op, int(sc.pos[g.ord]))
	}
	return asError(err)
}

// compile parses expr (lim already normalized), emits govaluate tokens and
// builds the govaluate expression, with literals as constants. risky reports
// whether some operation that might divide by zero was left unguarded (see
// emitter.guarded). With a non-nil sc the buffers come from (and are stored
// back to) sc; the result must then not outlive sc's next use.
func compile(expr string, lim Limits, guardAll bool, sc *scratch) (ge *govaluate.EvaluableExpression, risky bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ge, risky, err = nil, false, newError(ErrInternal, -1, "internal error: panic while compiling: %v", r)
		}
	}()
	p := parser{src: expr, lim: lim, build: true}
	if sc != nil {
		p.nodes = sc.nodes[:0]
	} else {
		// Every node consumes at least one token, and a binary operator
		// node two; half the length is a good first guess.
		p.nodes = make([]node, 0, min(len(expr), lim.MaxTokens)/2+2)
	}
	root := p.parse()
	if sc != nil {
		sc.nodes = p.nodes
	}
	if p.err != nil {
		return nil, false, p.err
	}
	return compileAST(p.nodes, root, p.tokenBound(), guardAll, false, sc)
}

// compileAST emits govaluate tokens for the AST rooted at root and builds the
// govaluate expression; with params set, literals become parameters (see
// emitter) and the result does not use sc's buffers.
func compileAST(nodes []node, root int32, tokenBound int, guardAll, params bool, sc *scratch) (ge *govaluate.EvaluableExpression, risky bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			ge, risky, err = nil, false, newError(ErrInternal, -1, "internal error: panic while compiling: %v", r)
		}
	}()
	var buf []govaluate.ExpressionToken
	if sc != nil {
		buf = sc.toks[:0]
	}
	toks, risky := tokens(nodes, root, buf, tokenBound, guardAll, params)
	if sc != nil {
		sc.toks = toks
		if params {
			// govaluate keeps the token slice; a cached expression must
			// not keep a pooled buffer.
			toks = slices.Clone(toks)
		}
	}
	ge, err = govaluate.NewEvaluableExpressionFromTokens(toks)
	if err != nil {
		return nil, false, newError(ErrInternal, -1, "internal error: govaluate rejected the token stream: %v", err)
	}
	return ge, risky, nil
}

// evaluate runs ge and turns its outcome into a finite float64 or an *Error.
func evaluate(ge *govaluate.EvaluableExpression, src string, lim Limits, risky bool) (v float64, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = 0, newError(ErrInternal, -1, "internal error: panic while evaluating: %v", r)
		}
	}()
	res, err := ge.Eval(nil)
	if err != nil {
		return 0, asError(err)
	}
	f, rerr := result(res)
	if rerr == nil {
		return f, nil
	}
	if !risky || rerr.Kind != ErrNonFinite {
		return 0, rerr
	}
	// Some division, modulo or power was evaluated without a guard; run the
	// expression again with all of them guarded to tell a division by zero
	// from an overflow. This only happens on the error path.
	if gg, _, cerr := compile(src, lim, true, nil); cerr == nil {
		if _, gerr := gg.Eval(nil); gerr != nil {
			if e := asError(gerr); e.Kind == ErrDivByZero {
				return 0, e
			}
		}
	}
	return 0, rerr
}

// result turns what govaluate returned into a finite float64 or an *Error
// (ErrNonFinite, or ErrInternal for a result that is not a float64).
func result(res any) (float64, *Error) {
	f, ok := res.(float64)
	if !ok {
		return 0, newError(ErrInternal, -1, "internal error: govaluate returned %T, not float64", res)
	}
	if !math.IsInf(f, 0) && !math.IsNaN(f) {
		return f, nil
	}
	if math.IsNaN(f) {
		return 0, &Error{Kind: ErrNonFinite, Pos: -1, Msg: "result is not a number (NaN): undefined operation, e.g. a negative number raised to a fractional power, or an overflowed intermediate value"}
	}
	return 0, &Error{Kind: ErrNonFinite, Pos: -1, Msg: "result overflows float64"}
}

func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return newError(ErrInternal, -1, "internal error: govaluate: %v", err)
}

var operations = [...]string{"addition", "subtraction", "multiplication", "division", "power", "modulo"}

// Operations returns the operation names accepted by EvalOperation, in a
// fresh slice: addition, subtraction, multiplication, division, power, modulo.
func Operations() []string {
	return append([]string(nil), operations[:]...)
}

// EvalOperation evaluates the seed service's request format: op applied to
// two or more operands, folded left to right, so ("power", [2, 3, 2]) is
// (2**3)**2 = 64 and ("subtraction", [10, 3, 2]) is 5. The arithmetic is the
// same as in expressions: "division" is float division, "modulo" is math.Mod
// (truncated; the result has the sign of the dividend), "power" is math.Pow.
//
// It fails with ErrUnknownOp for an unknown op (names are case-sensitive),
// ErrOperandCount for fewer than two operands, ErrNonFinite for an Inf/NaN
// operand or a step whose result is not finite, and ErrDivByZero for a
// division or modulo by zero or zero raised to a negative power.
func EvalOperation(op string, operands []float64) (float64, error) {
	var f func(a, b float64) float64
	divides := false
	switch op {
	case "addition":
		f = func(a, b float64) float64 { return a + b }
	case "subtraction":
		f = func(a, b float64) float64 { return a - b }
	case "multiplication":
		f = func(a, b float64) float64 { return a * b }
	case "division":
		f, divides = func(a, b float64) float64 { return a / b }, true
	case "modulo":
		f, divides = math.Mod, true
	case "power":
		f = math.Pow
	default:
		return 0, newError(ErrUnknownOp, -1, "unknown operation %q (want one of %s)", op, joinOps())
	}
	if len(operands) < 2 {
		return 0, newError(ErrOperandCount, -1, "operation %q needs at least 2 operands, got %d", op, len(operands))
	}
	for i, x := range operands {
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, newError(ErrNonFinite, -1, "operand %d (%v) is not finite", i, x)
		}
	}
	acc := operands[0]
	for i, b := range operands[1:] {
		i++
		if divides && b == 0 {
			return 0, newError(ErrDivByZero, -1, "division by zero (operand %d is 0)", i)
		}
		if op == "power" && acc == 0 && b < 0 {
			return 0, newError(ErrDivByZero, -1, "division by zero (zero raised to a negative power at operand %d)", i)
		}
		acc = f(acc, b)
		if math.IsNaN(acc) {
			return 0, newError(ErrNonFinite, -1, "result is not a number (NaN) after operand %d", i)
		}
		if math.IsInf(acc, 0) {
			return 0, newError(ErrNonFinite, -1, "result overflows float64 after operand %d", i)
		}
	}
	return acc, nil
}

func joinOps() string { return strings.Join(operations[:], ", ") }
