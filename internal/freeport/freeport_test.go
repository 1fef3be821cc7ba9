package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestLoopbackPortsAreBindableDistinctAndOutsideTheEphemeralRange picks
// many ports, binds each, and checks none repeats or lies where the
// kernel draws outgoing connections' source ports from.
func TestLoopbackPortsAreBindableDistinctAndOutsideTheEphemeralRange(t *testing.T) {
	hi := ephemeralLow()
	seen := map[int]bool{}
	for range 200 {
		p, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d given twice", p)
		}
		seen[p] = true
		if hi-low >= 1000 && (p < low || p >= hi) {
			t.Errorf("port %d outside [%d, %d)", p, low, hi)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d not bindable: %v", p, err)
		}
		ln.Close()
	}
}

// TestLoopbackSkipsABoundPort holds most of a small window of ports and
// checks Loopback never returns one of them.
func TestLoopbackSkipsABoundPort(t *testing.T) {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	busy := map[int]bool{}
	for range 50 {
		p, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ln)
		busy[p] = true
	}
	// Forget that they were given: only the bind check can skip them now.
	mu.Lock()
	for p := range busy {
		delete(given, p)
	}
	mu.Unlock()
	for range 2000 {
		p, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		if busy[p] {
			t.Fatalf("port %d is bound by this test and was returned", p)
		}
	}
}
