package deadpeer

import (
	"fmt"
	"strings"
	"syscall"
	"time"
)

// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h, the same on every
// architecture), which package syscall does not name.
const tcpUserTimeout = 18

// setUnackedTimeout makes a TCP connection fail when data it sent stays
// unacknowledged for d (TCP_USER_TIMEOUT); d <= 0 leaves the kernel's own.
func setUnackedTimeout(network string, c syscall.RawConn, d time.Duration) error {
	if d <= 0 || !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
	}); err != nil {
		return fmt.Errorf("set TCP_USER_TIMEOUT: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set TCP_USER_TIMEOUT: %w", serr)
	}
	return nil
}
