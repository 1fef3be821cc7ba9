// Package deadpeer makes TCP connections find a peer that died without
// closing them, in seconds rather than minutes. A killed VM sends neither a
// reset nor anything else, so without help a connection to it waits:
//   - while every byte it sent is acknowledged (it waits for an answer),
//     until the kernel's keepalive, off or hours away by default; a Probe
//     sends keepalive probes instead, which a live peer's kernel answers
//     even while its process is busy;
//   - while data it sent waits for its acknowledgement (a request written
//     after the peer died), while TCP retransmits with a growing backoff,
//     15 minutes by default, and keepalive does not apply; a Probe sets
//     TCP_USER_TIMEOUT (Linux), which fails the connection instead.
package deadpeer

import (
	"context"
	"net"
	"syscall"
	"time"
)

// Probe is how a connection finds a dead peer.
type Probe struct {
	// KeepAlive probes the peer while the connection is idle.
	KeepAlive net.KeepAliveConfig
	// Unacked fails the connection when data it sent stays unacknowledged
	// this long (TCP_USER_TIMEOUT; Linux only, elsewhere the kernel's own
	// retransmission limit holds).
	Unacked time.Duration
}

// Services is for calls between calclab's services: a dead peer is found
// within about 5s (2s idle, then a probe a second, 3 unanswered; 5s
// unacknowledged).
var Services = Probe{
	KeepAlive: net.KeepAliveConfig{Enable: true, Idle: 2 * time.Second, Interval: time.Second, Count: 3},
	Unacked:   5 * time.Second,
}

// SSH is for the lab's SSH connections to its VMs, which may run slowly
// (emulated CPUs, a boot in progress): a dead peer is found within about
// 30s (10s idle, then a probe every 5s, 4 unanswered; 30s unacknowledged).
var SSH = Probe{
	KeepAlive: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 4},
	Unacked:   30 * time.Second,
}

// Dialer returns a dialer whose TCP connections find a dead peer as p says,
// with a dial timeout (0: none but the context's) and control, when set,
// vetting every address before it is dialled.
func (p Probe) Dialer(timeout time.Duration, control func(network, address string) error) *net.Dialer {
	return &net.Dialer{
		Timeout:         timeout,
		KeepAliveConfig: p.KeepAlive,
		ControlContext: func(_ context.Context, network, address string, c syscall.RawConn) error {
			if control != nil {
				if err := control(network, address); err != nil {
					return err
				}
			}
			return setUnackedTimeout(network, c, p.Unacked)
		},
	}
}
