// Package faultproxy is a TCP proxy for tests that fakes what a host that
// died does to its connections, on loopback: the connections it carries can
// go silent (what they carry is swallowed, nothing answers, nothing resets
// them, as when a VM is killed and its peer waits on its retransmission
// timer), and new connections can be cut at once (the host is down).
// Connections opened after that reach the target again (a new host at the
// same address).
package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards the connections it accepts to a target address.
type Proxy struct {
	ln     net.Listener
	to     string
	mu     sync.Mutex
	conns  []*conn
	opened atomic.Int32
	cut    atomic.Bool
}

type conn struct {
	client, server net.Conn
	silent         atomic.Bool
}

// New starts a proxy on a free loopback port to the address to; the test's
// end stops it and closes every connection.
func New(t testing.TB, to string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, to: to}
	t.Cleanup(p.close)
	go p.accept()
	return p
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Opened is how many connections reached the target.
func (p *Proxy) Opened() int { return int(p.opened.Load()) }

// Silence makes every connection open now go silent for good.
func (p *Proxy) Silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.silent.Store(true)
	}
}

// Cut closes new connections as soon as they are accepted (cut true), or
// forwards them again (false).
func (p *Proxy) Cut(cut bool) { p.cut.Store(cut) }

func (p *Proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.cut.Load() {
			client.Close()
			continue
		}
		server, err := net.Dial("tcp", p.to)
		if err != nil {
			client.Close()
			continue
		}
		c := &conn{client: client, server: server}
		p.opened.Add(1)
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		go c.pipe(client, server)
		go c.pipe(server, client)
	}
}

// pipe copies from src to dst until the connection is silenced, then
// swallows what src sends; it ends when either side fails.
func (c *conn) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.silent.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
}
