// Package ps renders PowerShell scripts whose every value is data, and runs
// them through an Executor: powershell.exe on this machine, or over SSH on a
// Windows host whose default shell is cmd.exe.
//
// A script is a fixed body (no value is ever spliced into its text) after a
// header that assigns each parameter from a quoted literal:
//
//	$SwitchName = 'calclab-internal'
//	$Prefix = 24
//
// Quote is the one function that turns a string into PowerShell source.
package ps

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// singleQuotes are the characters PowerShell's tokenizer takes as a single
// quote (the language specification's single-quote-character): the ASCII
// apostrophe and four typographic quotes. Any of them ends a verbatim string
// unless it is doubled, so all five are doubled.
const singleQuotes = "'\u2018\u2019\u201a\u201b"

func isSingleQuote(r rune) bool { return strings.ContainsRune(singleQuotes, r) }

// ErrUnquotable is returned for a value that cannot be a PowerShell string
// literal: text that is not UTF-8 (PowerShell source is UTF-16, so the
// bytes would change on the way) or holds a NUL.
var ErrUnquotable = errors.New("not representable as a PowerShell string")

// Check reports whether s can be quoted.
func Check(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q: %w (not UTF-8)", s, ErrUnquotable)
	}
	if strings.ContainsRune(s, 0) {
		return fmt.Errorf("%q: %w (holds a NUL character)", s, ErrUnquotable)
	}
	return nil
}

// Quote returns s as a PowerShell verbatim (single-quoted) string literal:
// no variable, subexpression or escape is expanded inside it, and each
// single-quote character is doubled. s must pass Check; Render checks every
// parameter before it quotes it.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if isSingleQuote(r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// Unquote reads a verbatim string literal at the start of src the way
// PowerShell's tokenizer does and returns its value and the number of bytes
// it took. It is the inverse of Quote, used by tests and the fake executor.
func Unquote(src string) (string, int, error) {
	r, n := utf8.DecodeRuneInString(src)
	if n == 0 || !isSingleQuote(r) {
		return "", 0, errors.New("ps: not a single-quoted literal")
	}
	var b strings.Builder
	i := n
	for i < len(src) {
		r, n := utf8.DecodeRuneInString(src[i:])
		i += n
		if isSingleQuote(r) {
			r2, n2 := utf8.DecodeRuneInString(src[i:])
			if n2 == 0 || !isSingleQuote(r2) {
				return b.String(), i, nil
			}
			// A doubled quote stands for its second character.
			b.WriteRune(r2)
			i += n2
			continue
		}
		b.WriteRune(r)
	}
	return "", 0, errors.New("ps: unterminated single-quoted literal")
}
