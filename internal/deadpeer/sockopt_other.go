//go:build !linux

package deadpeer

import (
	"syscall"
	"time"
)

// setUnackedTimeout does nothing where TCP_USER_TIMEOUT is not set: a
// request written to a peer that died waits for the call's own timeout.
func setUnackedTimeout(string, syscall.RawConn, time.Duration) error { return nil }
