package calc

import (
	"math"

	"github.com/casbin/govaluate"
)

// emitter turns the AST into a govaluate token stream whose govaluate parse
// is exactly the AST. govaluate's own grammar is, from loosest to tightest:
// + - (left-assoc), * / % (left-assoc), ** (LEFT-assoc), prefix - (binds to
// the next single value or parenthesised group). So the emitter:
//
//   - wraps an operand in CLAUSE/CLAUSE_CLOSE when its govaluate level is
//     lower than the operator's, or equal on the right-hand side (this keeps
//     x-(y-z), x+(y+z) and x**(y**z) grouped as written in the AST);
//   - emits -x for a non-literal x as "-1 * x" (exact in IEEE 754), which
//     needs no parentheses around a power, unlike govaluate's prefix minus
//     ("-2**2" in govaluate is 4); negated literals were already folded into
//     negative NUMERIC tokens by the parser;
//   - guards operations that might divide by zero (see guarded below) with a
//     FUNCTION token, because IEEE 754 would otherwise turn them into ±Inf or
//     NaN that a later operation can hide (1/(1/0) = 0, (0/0)**0 = 1).
//
// With params set (the shape cache, see cache.go) the output depends only on
// the expression's shape key: every literal becomes a VARIABLE named after
// its parameter index (node.ord), to be bound by literalParams, and a guard
// reports a division by zero as a *guardError naming the operation's position
// index instead of the position itself. scratch.shape must have set node.ord.
type emitter struct {
	nodes    []node
	out      []govaluate.ExpressionToken
	guardAll bool // guard every risky operation, not only masked ones
	params   bool // emit literals as parameters (see above)
	risky    bool // some risky operation was left unguarded
}

// govaluate precedence levels of what a node is emitted as.
const (
	levelAdd  = 1
	levelMul  = 2
	levelPow  = 3
	levelAtom = 4
)

func opLevel(op nodeOp) int {
	switch op {
	case nAdd, nSub:
		return levelAdd
	case nMul, nDiv, nMod, nNeg:
		return levelMul
	case nPow:
		return levelPow
	}
	return levelAtom
}

// Risky operations are the ones that can divide by zero: x/y and x%y unless y
// is a non-zero literal, and x**y unless x is a non-zero literal or y is a
// non-negative literal.
func (e *emitter) riskyDiv(n *node) bool {
	d := &e.nodes[n.r]
	return d.op != nNum || d.val == 0
}

func (e *emitter) riskyPow(n *node) bool {
	b, x := &e.nodes[n.l], &e.nodes[n.r]
	return !(b.op == nNum && b.val != 0) && !(x.op == nNum && x.val >= 0)
}

// guarded reports whether node i, in the given context, is emitted with a
// divide-by-zero guard.
//
// A subexpression is "masked" when it sits (at any depth) in the right operand
// of / or %, or in an operand of **: only there can a non-finite intermediate
// value turn into a finite result (x/Inf = 0, x%Inf = x, Inf**0 = 1, 1**NaN =
// 1, ...). Everywhere else +, -, *, unary minus and the left operand of / and
// % carry Inf/NaN to the result, where Eval notices it and, if the expression
// has unguarded risky operations, re-runs it with guardAll to find out whether
// the cause was a division by zero. This keeps the common case free of
// function-call overhead.
func (e *emitter) guarded(i int32, masked bool) bool {
	n := &e.nodes[i]
	switch n.op {
	case nDiv, nMod:
		return (masked || e.guardAll) && e.riskyDiv(n)
	case nPow:
		return (masked || e.guardAll) && e.riskyPow(n)
	}
	return false
}

// level returns the govaluate level node i is emitted at.
func (e *emitter) level(i int32, masked bool) int {
	n := &e.nodes[i]
	if n.op == nPow && e.guarded(i, masked) {
		return levelAtom // emitted as a function call
	}
	return opLevel(n.op)
}

func (e *emitter) put(kind govaluate.TokenKind, v any) {
	e.out = append(e.out, govaluate.ExpressionToken{Kind: kind, Value: v})
}

// operand emits child i of an operator of level g, in parentheses if needed.
func (e *emitter) operand(i int32, masked bool, g int, right bool) {
	l := e.level(i, masked)
	if l < g || (right && l == g) {
		e.put(govaluate.CLAUSE, '(')
		e.emit(i, masked)
		e.put(govaluate.CLAUSE_CLOSE, ')')
		return
	}
	e.emit(i, masked)
}

// opSymbols holds the MODIFIER values, boxed once.
var opSymbols = [...]any{nAdd: "+", nSub: "-", nMul: "*", nDiv: "/", nMod: "%", nPow: "**"}

func (e *emitter) emit(i int32, masked bool) {
	n := &e.nodes[i]
	switch n.op {
	case nNum:
		if e.params {
			e.put(govaluate.VARIABLE, paramNames[n.ord])
			return
		}
		e.put(govaluate.NUMERIC, boxFloat(n.val))
	case nNeg:
		e.put(govaluate.NUMERIC, boxFloat(-1))
		e.put(govaluate.MODIFIER, "*")
		e.operand(n.l, masked, levelMul, true)
	case nAdd, nSub, nMul:
		g := opLevel(n.op)
		e.operand(n.l, masked, g, false)
		e.put(govaluate.MODIFIER, opSymbols[n.op])
		e.operand(n.r, masked, g, true)
	case nDiv, nMod:
		e.operand(n.l, masked, levelMul, false)
		e.put(govaluate.MODIFIER, opSymbols[n.op])
		if e.guarded(i, masked) {
			e.put(govaluate.FUNCTION, e.divGuard(n))
			e.put(govaluate.CLAUSE, '(')
			e.emit(n.r, true)
			e.put(govaluate.CLAUSE_CLOSE, ')')
			return
		}
		if e.riskyDiv(n) {
			e.risky = true
		}
		e.operand(n.r, true, levelMul, true)
	case nPow:
		if e.guarded(i, masked) {
			e.put(govaluate.FUNCTION, e.powGuard(n))
			e.put(govaluate.CLAUSE, '(')
			e.emit(n.l, true)
			e.put(govaluate.SEPARATOR, ",")
			e.emit(n.r, true)
			e.put(govaluate.CLAUSE_CLOSE, ')')
			return
		}
		if e.riskyPow(n) {
			e.risky = true
		}
		e.operand(n.l, true, levelPow, false)
		e.put(govaluate.MODIFIER, "**")
		e.operand(n.r, true, levelPow, true)
	}
}

// divGuard returns a govaluate function that passes its argument (a divisor)
// through unless it is zero.
func (e *emitter) divGuard(n *node) any {
	op, pos, fail := n.op, int(n.pos), e.guardFailure(n)
	return govaluate.ExpressionFunction(func(args ...any) (any, error) {
		if len(args) == 1 {
			if d, ok := args[0].(float64); ok {
				if d == 0 {
					if fail != nil {
						return nil, fail
					}
					return nil, divByZeroError(op, pos)
				}
				return args[0], nil
			}
		}
		return nil, newError(ErrInternal, pos, "internal error: bad divisor guard arguments %v", args)
	})
}

// powGuard returns a govaluate function computing math.Pow(base, exp) that
// fails when base is zero and exp is negative.
func (e *emitter) powGuard(n *node) any {
	pos, fail := int(n.pos), e.guardFailure(n)
	return govaluate.ExpressionFunction(func(args ...any) (any, error) {
		if len(args) == 2 {
			b, ok1 := args[0].(float64)
			x, ok2 := args[1].(float64)
			if ok1 && ok2 {
				if b == 0 && x < 0 {
					if fail != nil {
						return nil, fail
					}
					return nil, divByZeroError(nPow, pos)
				}
				return math.Pow(b, x), nil
			}
		}
		return nil, newError(ErrInternal, pos, "internal error: bad power guard arguments %v", args)
	})
}

// guardFailure returns the error a guard of node n returns in params mode (a
// single immutable value, so a failing guard does not allocate), or nil.
func (e *emitter) guardFailure(n *node) *guardError {
	if !e.params {
		return nil
	}
	return &guardError{op: n.op, ord: n.ord}
}

// guardError is what a guard compiled in params mode returns: a division by
// zero at the operation with position index ord. The evaluator turns it into
// the *Error divByZeroError makes, with the position taken from the
// expression being evaluated. It never reaches the caller.
type guardError struct {
	op  nodeOp
	ord int32
}

func (g *guardError) Error() string { return "division by zero (position index unresolved)" }

// divByZeroError is the error for a division or modulo by zero (or zero
// raised to a negative power, op nPow) at byte offset pos.
func divByZeroError(op nodeOp, pos int) *Error {
	switch op {
	case nMod:
		return newError(ErrDivByZero, pos, "division by zero (modulo) at position %d", pos)
	case nPow:
		return newError(ErrDivByZero, pos, "division by zero (zero raised to a negative power) at position %d", pos)
	}
	return newError(ErrDivByZero, pos, "division by zero at position %d", pos)
}

// boxedInts holds pre-boxed float64 values for small integers, so that the
// common literals do not allocate when stored in an ExpressionToken.
var boxedInts = func() (b [513]any) {
	for i := range b {
		b[i] = float64(i - 256)
	}
	return b
}()

func boxFloat(v float64) any {
	if v >= -256 && v <= 256 {
		if i := int(v); float64(i) == v && (i != 0 || !math.Signbit(v)) {
			return boxedInts[i+256]
		}
	}
	return v
}

// tokens appends the govaluate token stream for the AST rooted at root to
// buf (which must be empty), growing it to capHint first if needed. With
// params set, literals become parameters (see emitter).
func tokens(nodes []node, root int32, buf []govaluate.ExpressionToken, capHint int, guardAll, params bool) ([]govaluate.ExpressionToken, bool) {
	if cap(buf) < capHint {
		buf = make([]govaluate.ExpressionToken, 0, capHint)
	}
	e := emitter{nodes: nodes, guardAll: guardAll, params: params, out: buf}
	e.emit(root, false)
	return e.out, e.risky
}
