package deadpeer

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestDialerSetsTheProbes: the connections of each Probe's dialer carry its
// keepalive settings and TCP_USER_TIMEOUT, as the kernel reports them (the
// integration tests show what they do against a host gone silent).
func TestDialerSetsTheProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	tests := []struct {
		name                   string
		p                      Probe
		idle, intvl, cnt, user int // seconds, seconds, probes, ms
	}{
		{"services", Services, 2, 1, 3, 5000},
		{"ssh", SSH, 10, 5, 4, 30000},
		{"no unacked timeout", Probe{KeepAlive: Services.KeepAlive}, 2, 1, 3, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.p.Dialer(time.Second, nil).DialContext(context.Background(), "tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rc, err := c.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			_ = rc.Control(func(fd uintptr) {
				for name, opt := range map[string][2]int{
					"SO_KEEPALIVE":     {syscall.SOL_SOCKET, syscall.SO_KEEPALIVE},
					"TCP_KEEPIDLE":     {syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE},
					"TCP_KEEPINTVL":    {syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL},
					"TCP_KEEPCNT":      {syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT},
					"TCP_USER_TIMEOUT": {syscall.IPPROTO_TCP, tcpUserTimeout},
				} {
					v, err := syscall.GetsockoptInt(int(fd), opt[0], opt[1])
					if err != nil {
						t.Errorf("getsockopt %s: %v", name, err)
					}
					got[name] = v
				}
			})
			want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": tc.idle, "TCP_KEEPINTVL": tc.intvl, "TCP_KEEPCNT": tc.cnt, "TCP_USER_TIMEOUT": tc.user}
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s = %d, want %d", name, got[name], w)
				}
			}
		})
	}
}

// TestDialerRefusesWhatControlRefuses: control's error ends the dial
// before any connection is made.
func TestDialerRefusesWhatControlRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	refused := errors.New("not in the allowed networks")
	_, err = Services.Dialer(time.Second, func(string, string) error { return refused }).DialContext(context.Background(), "tcp", ln.Addr().String())
	if !errors.Is(err, refused) {
		t.Fatalf("dial: %v, want the control's error", err)
	}
}
