package ps

import (
	"math/rand"
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"

	"github.com/calclab/calclab/infra/driver/hyperv/ps/pstest"
)

// nasty are the characters that mean something to PowerShell's tokenizer
// in or around a string: every kind of quote, variables, subexpressions,
// escapes, comments, here-strings, statement separators, line ends.
var nasty = []string{"'", "''", "\u2018", "\u2019", "\u201a", "\u201b", "\"", "\u201c", "\u201d", "$", "$(", "${", "`", "`'", "#", "<#", "#>", "@'", "'@", "@\"", ";", "|", "&", "\n", "\r\n", "\r", "\t", " ", "\\", "%", "^", "(", ")", "{", "}", "\u00e9", "\U0001F600", "\u2028", "\ufeff", "x", "C:\\Users\\O\u2019Brien\\image.vhdx"}

// randomValue builds a string from nasty pieces and random runes.
func randomValue(r *rand.Rand) string {
	var b strings.Builder
	for n := r.Intn(12); n > 0; n-- {
		if r.Intn(4) == 0 {
			c := rune(r.Intn(0x2FFFF) + 1)
			if utf8.ValidRune(c) {
				b.WriteRune(c)
			}
			continue
		}
		b.WriteString(nasty[r.Intn(len(nasty))])
	}
	return b.String()
}

// TestQuoteUnquoteProperty: for any quotable string, PowerShell's reading
// of Quote(s) (Unquote follows its tokenizer's rules) is s, and the literal
// ends exactly where Quote's output ends: nothing can break out.
func TestQuoteUnquoteProperty(t *testing.T) {
	prop := func(s string) bool {
		if Check(s) != nil {
			return true
		}
		q := Quote(s)
		got, n, err := Unquote(q + " + 'tail'")
		return err == nil && got == s && n == len(q)
	}
	cfg := &quick.Config{MaxCount: 20000, Values: nil}
	if err := quick.Check(prop, cfg); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20000; i++ {
		s := randomValue(r)
		if !prop(s) {
			t.Fatalf("Quote(%q) = %s does not read back", s, Quote(s))
		}
	}
}

func FuzzQuote(f *testing.F) {
	for _, s := range nasty {
		f.Add(s)
	}
	f.Add("a'); Remove-Item -Recurse C:\\ #")
	f.Fuzz(func(t *testing.T, s string) {
		if err := Check(s); err != nil {
			if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
				t.Fatalf("Check(%q) refused a representable string: %v", s, err)
			}
			return
		}
		q := Quote(s)
		got, n, err := Unquote(q + " ")
		if err != nil || got != s || n != len(q) {
			t.Fatalf("Quote(%q) = %s reads back as %q (%d of %d bytes, %v)", s, q, got, n, len(q), err)
		}
	})
}

func TestCheckRefuses(t *testing.T) {
	for _, s := range []string{"a\x00b", "\xff", "ok\xc3"} {
		t.Run(s, func(t *testing.T) {
			if err := Check(s); err == nil {
				t.Fatalf("Check(%q) = nil", s)
			}
			sc := &Script{Step: "x", Params: []Param{{Name: "V", Value: s}}}
			if _, err := sc.Render(); err == nil || !strings.Contains(err.Error(), "parameter V") {
				t.Fatalf("Render with %q: %v", s, err)
			}
		})
	}
}

// TestQuoteParsesAsOneLiteral runs the real PowerShell grammar
// (tree-sitter-powershell) over `$x = <Quote(s)>` for thousands of random
// strings: each must parse without error as one statement holding exactly
// one verbatim string token, the whole literal, whose value is s.
func TestQuoteParsesAsOneLiteral(t *testing.T) {
	pstest.Require(t)
	r := rand.New(rand.NewSource(7))
	var values []string
	for _, s := range nasty {
		values = append(values, s, s+s+"x")
	}
	quick.Check(func(s string) bool {
		if Check(s) == nil {
			values = append(values, s)
		}
		return true
	}, &quick.Config{MaxCount: 1000})
	for len(values) < 4000 {
		values = append(values, randomValue(r))
	}
	sources := make([]string, len(values))
	for i, s := range values {
		sources[i] = "$x = " + Quote(s) + "\nWrite-Output $x\n"
	}
	res := pstest.Parse(t, sources)
	for i, s := range values {
		got := res[i]
		q := Quote(s)
		if len(got.Errors) > 0 || got.Statements != 2 || len(got.Strings) != 1 ||
			got.Strings[0].Type != "verbatim_string_characters" || got.Strings[0].Text != q {
			t.Fatalf("value %q quoted as %s: parsed as %+v", s, q, got)
		}
		if v, _, err := Unquote(got.Strings[0].Text); err != nil || v != s {
			t.Fatalf("value %q: literal reads back as %q (%v)", s, v, err)
		}
	}
	t.Logf("%d random values, each one verbatim literal to tree-sitter-powershell", len(values))
}
