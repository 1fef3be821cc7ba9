package calc

import "fmt"

// Kind classifies an [Error]. A Kind is itself an error value, so callers can
// test for a class of failure with errors.Is:
//
//	if errors.Is(err, calc.ErrTooLong) { status = http.StatusRequestEntityTooLarge }
type Kind int

// Error kinds. The HTTP layer is expected to map ErrTooLong to 413, ErrInternal
// to 500 and every other kind to 422.
const (
	// ErrSyntax: the expression is malformed (missing operand or operator,
	// unbalanced or empty parentheses, malformed number, empty expression).
	ErrSyntax Kind = iota + 1
	// ErrTooLong: the expression exceeds Limits.MaxLen bytes or Limits.MaxTokens tokens.
	ErrTooLong
	// ErrTooDeep: parentheses, unary operators and "**" right operands are
	// nested deeper than Limits.MaxDepth.
	ErrTooDeep
	// ErrNotAllowed: a character or construct outside the arithmetic grammar
	// (letters/variables, functions, strings, comparison, logical or ternary
	// operators, commas, "//", non-ASCII characters, ...).
	ErrNotAllowed
	// ErrNonFinite: the result (or a numeric literal, or an EvalOperation
	// operand or step) is ±Inf or NaN.
	ErrNonFinite
	// ErrDivByZero: a division or modulo by zero, or zero raised to a negative power.
	ErrDivByZero
	// ErrUnknownOp: EvalOperation was given an operation name it does not know.
	ErrUnknownOp
	// ErrOperandCount: EvalOperation was given fewer than two operands.
	ErrOperandCount
	// ErrInternal: an unexpected failure inside govaluate (including a
	// recovered panic). It indicates a bug in this package, not in the input.
	ErrInternal
)

var kindNames = [...]string{
	ErrSyntax:       "syntax error",
	ErrTooLong:      "expression too long",
	ErrTooDeep:      "expression nested too deeply",
	ErrNotAllowed:   "construct not allowed",
	ErrNonFinite:    "non-finite number",
	ErrDivByZero:    "division by zero",
	ErrUnknownOp:    "unknown operation",
	ErrOperandCount: "wrong number of operands",
	ErrInternal:     "internal error",
}

// String returns a short human-readable name of the kind, e.g. "syntax error".
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("calc.Kind(%d)", int(k))
}

// Error returns the same text as String, which lets a Kind be used as an
// errors.Is target.
func (k Kind) Error() string { return k.String() }

// Error is the error type returned by every function of this package.
// Msg is complete, user-facing text (it already mentions the position when
// there is one); Pos is the 0-based byte offset in the expression that the
// error refers to, or -1 when no single position applies (limits on the whole
// expression, non-finite results, EvalOperation errors).
type Error struct {
	Kind Kind
	Msg  string
	Pos  int
}

// Error returns the user-facing message.
func (e *Error) Error() string { return e.Msg }

// Is reports whether target is the Kind of e, so errors.Is(err, calc.ErrSyntax) works.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

func newError(kind Kind, pos int, format string, args ...any) *Error {
	return &Error{Kind: kind, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}
