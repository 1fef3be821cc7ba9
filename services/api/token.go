package api

import (
	"fmt"
	"regexp"
)

// MaxTokenLen bounds the shared registration token.
const MaxTokenLen = 512

// CheckToken reports whether tok can be the shared registration token. It
// travels as "Authorization: Bearer <tok>" and as a CALCLAB_TOKEN line of
// an environment file, so it is made of RFC 6750's token characters only:
// letters, digits, - . _ ~ + / and trailing =. "" means no token.
func CheckToken(tok string) error {
	if len(tok) > MaxTokenLen {
		return fmt.Errorf("is %d characters long; at most %d", len(tok), MaxTokenLen)
	}
	pad := false
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c == '=' && i > 0:
			pad = true
		case pad:
			return fmt.Errorf("has %q after '='; '=' may only end it", c)
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return fmt.Errorf("has the character %q; use letters, digits, - . _ ~ + / (and = at the end)", rune(c))
		}
	}
	return nil
}

// IDPattern is what a task id and a slave id are made of: 1 to 128
// letters, digits, '.', '_', ':' or '-', starting with a letter or digit.
var IDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
