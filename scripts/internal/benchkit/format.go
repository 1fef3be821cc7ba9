package benchkit

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Commas formats v rounded to an integer with thousands separators
// ("1,234,567"); NaN and infinities are "?".
func Commas(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	neg := v < 0
	s := strconv.FormatInt(int64(math.Round(math.Abs(v))), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// FmtDur formats d in milliseconds with three significant digits or so
// ("0.870 ms", "8.66 ms", "26.8 ms"), from 1s on in seconds ("1.10 s").
func FmtDur(d time.Duration) string {
	return FmtMS(float64(d) / float64(time.Millisecond))
}

// FmtMS is FmtDur of a number of milliseconds.
func FmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}

// Wrap breaks s into lines of at most n characters at spaces (a longer
// word stays whole).
func Wrap(s string, n int) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if col+1+len(word) > n {
				b.WriteByte('\n')
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}

// Table is a header and rows of cells; Right says which columns are
// numbers, aligned right.
type Table struct {
	Head  []string
	Right []bool
	Rows  [][]string
}

// Text writes the table as aligned columns under a dashed rule.
func (t *Table) Text(w io.Writer) {
	width := make([]int, len(t.Head))
	for _, r := range append([][]string{t.Head}, t.Rows...) {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("   ")
			}
			if t.Right[i] {
				b.WriteString(pad + c)
			} else if i < len(r)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.Head)
	var sep []string
	for i := range t.Head {
		sep = append(sep, strings.Repeat("-", width[i]))
	}
	line(sep)
	for _, r := range t.Rows {
		line(r)
	}
}

// Markdown writes the table as a Markdown pipe table.
func (t *Table) Markdown(w io.Writer) {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString("|")
	for _, h := range t.Head {
		b.WriteString(" " + esc(h) + " |")
	}
	b.WriteString("\n|")
	for i := range t.Head {
		if t.Right[i] {
			b.WriteString("--:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		b.WriteString("|")
		for _, c := range r {
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	fmt.Fprint(w, b.String())
}
