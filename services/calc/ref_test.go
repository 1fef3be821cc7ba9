package calc

// An independent reference implementation of the grammar, used by the
// differential test and the fuzz target. It deliberately shares no code with
// the package: it tokenizes eagerly, builds a pointer AST with ordinary
// Python-style recursive descent and evaluates it directly in float64 with
// the documented semantics:
//
//   - x/0, x%0 and 0**negative fail with a division by zero, wherever they
//     occur (like Python's ZeroDivisionError);
//   - everything else is plain IEEE 754 (overflow gives ±Inf, math.Mod for %,
//     math.Pow for **); only the final result must be finite.

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

type refClass int

const (
	refOK        refClass = iota
	refInvalid            // rejected by the grammar (what Check rejects)
	refDivZero            // a division by zero happened
	refNonFinite          // the result is ±Inf or NaN
)

var errRefDivZero = errors.New("ref: division by zero")

type refNode struct {
	op          string // "num", "neg", "+", "-", "*", "/", "%", "**"
	val         float64
	left, right *refNode
}

type refParser struct {
	toks []string
	i    int
}

// refTokenize splits s into tokens; ok is false for anything outside the
// language (bad characters or malformed / out-of-range numbers).
func refTokenize(s string) (toks []string, ok bool) {
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case strings.IndexByte(" \t\n\r\v\f", c) >= 0:
			i++
		case c == '*' && i+1 < len(s) && s[i+1] == '*':
			toks = append(toks, "**")
			i += 2
		case c == '^':
			toks = append(toks, "**")
			i++
		case strings.IndexByte("+-*/%()", c) >= 0:
			toks = append(toks, s[i:i+1])
			i++
		case c >= '0' && c <= '9' || c == '.':
			j := i
			digits := 0
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
				digits++
			}
			if j < len(s) && s[j] == '.' {
				j++
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
					digits++
				}
			}
			if digits == 0 {
				return nil, false
			}
			if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
				k := j + 1
				if k < len(s) && (s[k] == '+' || s[k] == '-') {
					k++
				}
				e := k
				for k < len(s) && s[k] >= '0' && s[k] <= '9' {
					k++
				}
				if k == e {
					return nil, false
				}
				j = k
			}
			if j < len(s) && (s[j] == '.' || s[j] >= '0' && s[j] <= '9') {
				return nil, false
			}
			v, err := strconv.ParseFloat(s[i:j], 64)
			if err != nil || math.IsInf(v, 0) {
				return nil, false
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, false
		}
	}
	return toks, true
}

func (p *refParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return ""
}

func (p *refParser) expr() (*refNode, bool) {
	n, ok := p.term()
	for ok && (p.peek() == "+" || p.peek() == "-") {
		op := p.toks[p.i]
		p.i++
		var r *refNode
		r, ok = p.term()
		n = &refNode{op: op, left: n, right: r}
	}
	return n, ok
}

func (p *refParser) term() (*refNode, bool) {
	n, ok := p.factor()
	for ok && (p.peek() == "*" || p.peek() == "/" || p.peek() == "%") {
		op := p.toks[p.i]
		p.i++
		var r *refNode
		r, ok = p.factor()
		n = &refNode{op: op, left: n, right: r}
	}
	return n, ok
}

func (p *refParser) factor() (*refNode, bool) {
	switch p.peek() {
	case "-":
		p.i++
		x, ok := p.factor()
		return &refNode{op: "neg", left: x}, ok
	case "+":
		p.i++
		return p.factor()
	}
	base, ok := p.atom()
	if ok && p.peek() == "**" {
		p.i++
		var e *refNode
		e, ok = p.factor()
		return &refNode{op: "**", left: base, right: e}, ok
	}
	return base, ok
}

func (p *refParser) atom() (*refNode, bool) {
	t := p.peek()
	switch {
	case t == "(":
		p.i++
		n, ok := p.expr()
		if !ok || p.peek() != ")" {
			return nil, false
		}
		p.i++
		return n, true
	case t != "" && (t[0] >= '0' && t[0] <= '9' || t[0] == '.'):
		p.i++
		v, _ := strconv.ParseFloat(t, 64)
		return &refNode{op: "num", val: v}, true
	}
	return nil, false
}

func (n *refNode) eval() (float64, error) {
	switch n.op {
	case "num":
		return n.val, nil
	case "neg":
		x, err := n.left.eval()
		return -x, err
	}
	a, err := n.left.eval()
	if err != nil {
		return 0, err
	}
	b, err := n.right.eval()
	if err != nil {
		return 0, err
	}
	switch n.op {
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	case "/":
		if b == 0 {
			return 0, errRefDivZero
		}
		return a / b, nil
	case "%":
		if b == 0 {
			return 0, errRefDivZero
		}
		return math.Mod(a, b), nil
	case "**":
		if a == 0 && b < 0 {
			return 0, errRefDivZero
		}
		return math.Pow(a, b), nil
	}
	panic("ref: bad op " + n.op)
}

// refEval evaluates s with the reference implementation.
func refEval(s string) (float64, refClass) {
	toks, ok := refTokenize(s)
	if !ok || len(toks) == 0 {
		return 0, refInvalid
	}
	p := refParser{toks: toks}
	n, ok := p.expr()
	if !ok || p.i != len(toks) {
		return 0, refInvalid
	}
	v, err := n.eval()
	if err != nil {
		return 0, refDivZero
	}
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, refNonFinite
	}
	return v, refOK
}

// classify maps an error of this package to the reference classes.
func classify(err error) refClass {
	var e *Error
	if err == nil {
		return refOK
	}
	if !errors.As(err, &e) {
		return -1
	}
	switch e.Kind {
	case ErrSyntax, ErrNotAllowed:
		return refInvalid
	case ErrNonFinite:
		if e.Pos >= 0 { // a literal out of range, reported by Check
			return refInvalid
		}
		return refNonFinite
	case ErrDivByZero:
		return refDivZero
	}
	return -1
}

// closeEnough reports whether a and b agree within 1e-9 relative (or both are zeros).
func closeEnough(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
