package benchkit

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// NewClient returns a load generator's HTTP client: keep-alive, up to
// conns idle connections to one host, no compression, and timeout for a
// whole request.
func NewClient(conns int, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConns:        0, // no global limit
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// Snippet is a reply body for an error message: trimmed, and cut after
// 160 bytes.
func Snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 160 {
		return string(b[:160]) + "..."
	}
	return string(b)
}

// ErrLog keeps the first five distinct error messages of a run, with how
// often each came, and counts the rest; it is safe for concurrent use.
type ErrLog struct {
	mu    sync.Mutex
	order []string
	count map[string]int
	other int
	total int
}

// Add records err, its message led by prefix and cut after 300 bytes.
func (l *ErrLog) Add(prefix string, err error) {
	msg := prefix + err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total++
	if l.count == nil {
		l.count = map[string]int{}
	}
	if _, ok := l.count[msg]; !ok && len(l.order) >= 5 {
		l.other++
		return
	}
	if _, ok := l.count[msg]; !ok {
		l.order = append(l.order, msg)
	}
	l.count[msg]++
}

// Total is how many errors were added.
func (l *ErrLog) Total() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Samples returns the kept messages as "3x message", then "Nx other
// messages" for the rest.
func (l *ErrLog) Samples() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.order {
		out = append(out, fmt.Sprintf("%dx %s", l.count[m], m))
	}
	if l.other > 0 {
		out = append(out, fmt.Sprintf("%dx other messages", l.other))
	}
	return out
}
