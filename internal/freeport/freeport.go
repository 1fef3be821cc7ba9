// Package freeport picks loopback TCP ports for programs that bind them a
// moment later (our services in tests and benches, QEMU's port forwards).
//
// A port the kernel hands out for "127.0.0.1:0" comes from its ephemeral
// range, the same range it draws the source port of every outgoing
// connection from: between the pick and the bind, any connection on the
// machine may take it. A fresh-clone CI run lost a test that way (the
// master's port was taken while pulumi was starting). The ports picked
// here lie below that range, where only another program's explicit bind
// can collide, and no port is given twice in one process.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// low is the first port picked; below it sit well-known and registered
// services (and a developer's lab on 5000, 6001, 6002).
const low = 20000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Loopback returns a TCP port that is free on 127.0.0.1 right now, lies
// below the kernel's ephemeral range when there is room there, and was
// not returned before by this process.
func Loopback() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	hi := ephemeralLow()
	if hi-low < 1000 {
		return kernelPick()
	}
	for range 1000 {
		p := low + rand.IntN(hi-low)
		if given[p] || !Bindable(p) {
			continue
		}
		given[p] = true
		return p, nil
	}
	return 0, errors.New("no free loopback port below the ephemeral range after 1000 tries")
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux
// reads it from /proc; elsewhere 32768, Linux's default, which is also
// below the IANA range other systems use).
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 32768
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 {
		return 32768
	}
	return n
}

// kernelPick is the fallback when the ephemeral range leaves no room
// below it: the kernel's choice, not given twice.
func kernelPick() (int, error) {
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free loopback port: %w", err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if !given[p] {
			given[p] = true
			return p, nil
		}
	}
	return 0, errors.New("find a free loopback port: the kernel gave only ports already given")
}

// Bindable reports whether 127.0.0.1:port can be bound now.
func Bindable(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}
