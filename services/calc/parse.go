package calc

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// tkind is the kind of a lexical token.
type tkind uint8

const (
	tEOF tkind = iota
	tErr       // the lexer failed; parser.err is set
	tNum
	tAdd    // +
	tSub    // -
	tMul    // *
	tDiv    // /
	tMod    // %
	tPow    // ** or ^
	tLParen // (
	tRParen // )
)

// token is one lexical token; pos and end are byte offsets into the source.
type token struct {
	kind     tkind
	pos, end int
	val      float64
}

// nodeOp is the operator of an AST node.
type nodeOp uint8

const (
	nNum nodeOp = iota
	nNeg
	nAdd
	nSub
	nMul
	nDiv
	nMod
	nPow
)

// node is an AST node. Children are indexes into parser.nodes.
type node struct {
	op   nodeOp
	l, r int32 // children; nNeg uses l only
	pos  int32 // byte offset of the operator (for error messages)
	ord  int32 // set by scratch.shape: parameter index (nNum) or position index (nDiv, nMod, nPow)
	val  float64
}

// parser is a recursive-descent parser that doubles as the guard. It lexes on
// demand (one token of look-ahead), enforces the limits while it goes, and,
// when build is set, records an AST in nodes. Check runs it with build unset,
// Compile with build set, so both accept exactly the same language.
//
// The parser only recurses on "(", unary operators and "**" right operands,
// and every one of them increments depth first, so its stack use is bounded
// by Limits.MaxDepth. (The emitter and govaluate also recurse along chains of
// binary operators such as 1+1+...+1; those are bounded by Limits.MaxTokens,
// and even 10^5 operators stay far below the Go stack limit.)
type parser struct {
	src   string
	lim   Limits
	i     int // lexer cursor
	tok   token
	prev  token
	ntok  int
	depth int
	err   *Error
	build bool
	nodes []node
	extra int // upper bound of the tokens the emitter adds to the source's (see tokenBound)
}

// tokenBound returns an upper bound of the number of govaluate tokens the
// emitter produces for the parsed AST. Relative to the source tokens, the
// emitter only adds tokens for unary minus ("-1 *", maybe parenthesised: +3),
// powers (parentheses around a right-hand power, or a guard call: +5) and
// divisions (guard call: +3). It is only a capacity hint.
func (p *parser) tokenBound() int { return p.ntok + p.extra }

// parse parses p.src completely and returns the root node index (-1 when not
// building). On failure p.err is set.
func (p *parser) parse() int32 {
	if len(p.src) > p.lim.MaxLen {
		p.err = newError(ErrTooLong, -1, "expression is %d bytes, limit is %d", len(p.src), p.lim.MaxLen)
		return -1
	}
	p.next()
	if p.tok.kind == tEOF {
		p.err = newError(ErrSyntax, 0, "empty expression")
		return -1
	}
	n := p.sum()
	if p.err != nil {
		return -1
	}
	switch p.tok.kind {
	case tEOF:
		return n
	case tRParen:
		p.fail(ErrSyntax, p.tok.pos, "unbalanced parenthesis at position %d", p.tok.pos)
	default:
		p.missingOperator()
	}
	return -1
}

func (p *parser) fail(kind Kind, pos int, format string, args ...any) {
	if p.err == nil {
		p.err = newError(kind, pos, format, args...)
	}
	p.tok = token{kind: tErr, pos: pos, end: pos}
}

// enter increments the nesting depth; it reports false (and sets p.err) when
// the limit is exceeded.
func (p *parser) enter(pos int) bool {
	p.depth++
	if p.depth > p.lim.MaxDepth {
		p.fail(ErrTooDeep, pos, "nesting depth exceeds %d at position %d", p.lim.MaxDepth, pos)
		return false
	}
	return true
}

// sum = product { ("+" | "-") product } .
func (p *parser) sum() int32 {
	n := p.product()
	for p.err == nil && (p.tok.kind == tAdd || p.tok.kind == tSub) {
		op, pos := nAdd, p.tok.pos
		if p.tok.kind == tSub {
			op = nSub
		}
		p.next()
		r := p.product()
		n = p.binary(op, pos, n, r)
	}
	return n
}

// product = unary { ("*" | "/" | "%") unary } .
func (p *parser) product() int32 {
	n := p.unary()
	for p.err == nil {
		var op nodeOp
		switch p.tok.kind {
		case tMul:
			op = nMul
		case tDiv:
			op = nDiv
		case tMod:
			op = nMod
		default:
			return n
		}
		pos := p.tok.pos
		p.next()
		r := p.unary()
		n = p.binary(op, pos, n, r)
	}
	return n
}

// unary = ("-" | "+") unary | power .
func (p *parser) unary() int32 {
	if p.err != nil {
		return -1
	}
	if k := p.tok.kind; k == tAdd || k == tSub {
		if !p.enter(p.tok.pos) {
			return -1
		}
		p.next()
		x := p.unary()
		p.depth--
		if k == tSub {
			return p.negate(x)
		}
		return x // unary plus is the identity on float64
	}
	return p.power()
}

// power = primary [ ("**" | "^") unary ] .
func (p *parser) power() int32 {
	b := p.primary()
	if p.err != nil || p.tok.kind != tPow {
		return b
	}
	pos := p.tok.pos
	if !p.enter(pos) {
		return -1
	}
	p.next()
	e := p.unary()
	p.depth--
	return p.binary(nPow, pos, b, e)
}

// primary = number | "(" sum ")" .
func (p *parser) primary() int32 {
	switch p.tok.kind {
	case tNum:
		n := p.number(p.tok.val)
		p.next()
		return n
	case tLParen:
		open := p.tok.pos
		if !p.enter(open) {
			return -1
		}
		p.next()
		if p.tok.kind == tRParen {
			p.fail(ErrSyntax, open, "empty parentheses at position %d", open)
			return -1
		}
		x := p.sum()
		if p.err != nil {
			return -1
		}
		switch p.tok.kind {
		case tRParen:
		case tEOF:
			p.fail(ErrSyntax, open, "unbalanced parenthesis at position %d", open)
			return -1
		default:
			p.missingOperator()
			return -1
		}
		p.depth--
		p.next()
		return x
	}
	p.missingOperand()
	return -1
}

// missingOperand reports the current token, which stands where an operand is required.
func (p *parser) missingOperand() {
	t := p.tok
	switch t.kind {
	case tErr:
		return
	case tEOF, tRParen:
		switch p.prev.kind {
		case tAdd, tSub, tMul, tDiv, tMod, tPow:
			p.fail(ErrSyntax, p.prev.pos, "operator %q at position %d needs a right operand", p.text(p.prev.pos, p.prev.end), p.prev.pos)
		case tLParen:
			p.fail(ErrSyntax, p.prev.pos, "unbalanced parenthesis at position %d", p.prev.pos)
		default:
			p.fail(ErrSyntax, t.pos, "unbalanced parenthesis at position %d", t.pos)
		}
	default: // a binary-only operator: * / % ** ^
		p.fail(ErrSyntax, t.pos, "operator %q at position %d needs a left operand", p.text(t.pos, t.end), t.pos)
	}
}

// missingOperator reports the current token (a number or "("), which follows
// a complete operand without an operator in between.
func (p *parser) missingOperator() {
	t := p.tok
	if t.kind == tErr {
		return
	}
	p.fail(ErrSyntax, t.pos, "missing operator before %q at position %d", p.text(t.pos, t.end), t.pos)
}

func (p *parser) number(v float64) int32 {
	if !p.build {
		return -1
	}
	p.nodes = append(p.nodes, node{op: nNum, val: v})
	return int32(len(p.nodes) - 1)
}

func (p *parser) binary(op nodeOp, pos int, l, r int32) int32 {
	if !p.build || p.err != nil {
		return -1
	}
	switch op {
	case nPow:
		p.extra += 5
	case nDiv, nMod:
		p.extra += 3
	}
	p.nodes = append(p.nodes, node{op: op, l: l, r: r, pos: int32(pos)})
	return int32(len(p.nodes) - 1)
}

// negate returns -x, folding it into a literal or cancelling a double
// negation; both are exact in IEEE 754.
func (p *parser) negate(x int32) int32 {
	if !p.build || p.err != nil {
		return -1
	}
	switch n := &p.nodes[x]; n.op {
	case nNum:
		n.val = -n.val
		return x
	case nNeg:
		return n.l
	}
	p.extra += 3
	p.nodes = append(p.nodes, node{op: nNeg, l: x})
	return int32(len(p.nodes) - 1)
}

// next advances the lexer by one token.
func (p *parser) next() {
	p.prev = p.tok
	s := p.src
	i := p.i
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i >= len(s) {
		p.i = i
		p.tok = token{kind: tEOF, pos: i, end: i}
		return
	}
	p.ntok++
	if p.ntok > p.lim.MaxTokens {
		p.fail(ErrTooLong, i, "expression has more than %d tokens (limit reached at position %d)", p.lim.MaxTokens, i)
		return
	}
	k, end := tEOF, i+1
	switch c := s[i]; c {
	case '+':
		k = tAdd
	case '-':
		k = tSub
	case '*':
		k = tMul
		if i+1 < len(s) && s[i+1] == '*' {
			k, end = tPow, i+2
		}
	case '^':
		k = tPow
	case '/':
		if i+1 < len(s) && s[i+1] == '/' {
			p.fail(ErrNotAllowed, i, "floor division \"//\" at position %d is not supported", i)
			return
		}
		k = tDiv
	case '%':
		k = tMod
	case '(':
		k = tLParen
	case ')':
		k = tRParen
	default:
		if isDigit(c) || c == '.' {
			p.lexNumber(i)
			return
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		p.fail(ErrNotAllowed, i, "unexpected character %q at position %d", p.text(i, i+size), i)
		return
	}
	p.i = end
	p.tok = token{kind: k, pos: i, end: end}
}

// lexNumber scans a decimal literal starting at s[start]:
//
//	digits [ "." [ digits ] ] [ exponent ] | "." digits [ exponent ]
func (p *parser) lexNumber(start int) {
	s := p.src
	j := start
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	intDigits := j - start
	fracDigits := 0
	dot := false
	if j < len(s) && s[j] == '.' {
		dot = true
		j++
		k := j
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		fracDigits = j - k
	}
	if intDigits+fracDigits == 0 {
		p.fail(ErrSyntax, start, "malformed number %q at position %d", p.text(start, j), start)
		return
	}
	exp := false
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k >= len(s) || !isDigit(s[k]) {
			p.fail(ErrSyntax, start, "malformed number %q at position %d: exponent has no digits", p.text(start, k), start)
			return
		}
		for k < len(s) && isDigit(s[k]) {
			k++
		}
		j, exp = k, true
	}
	if j < len(s) && (s[j] == '.' || isDigit(s[j])) {
		// e.g. "1.2.3" or "1e5.5"
		k := j
		for k < len(s) && (s[k] == '.' || isDigit(s[k])) {
			k++
		}
		p.fail(ErrSyntax, start, "malformed number %q at position %d", p.text(start, k), start)
		return
	}
	var v float64
	if !dot && !exp && intDigits <= 15 {
		// Fast path: up to 15 decimal digits are exact in a float64.
		var u uint64
		for _, c := range []byte(s[start:j]) {
			u = u*10 + uint64(c-'0')
		}
		v = float64(u)
	} else {
		var err error
		v, err = strconv.ParseFloat(s[start:j], 64)
		if err != nil || math.IsInf(v, 0) {
			p.fail(ErrNonFinite, start, "number %q at position %d is too large for float64", p.text(start, j), start)
			return
		}
	}
	p.i = j
	p.tok = token{kind: tNum, pos: start, end: j, val: v}
}

// text returns src[a:b], for error messages.
func (p *parser) text(a, b int) string { return p.src[a:b] }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
