// Package proc holds what the lab's drivers need of the processes they
// start (a local service, a QEMU VM, a switch): start one detached from
// the lab command, tell whether a recorded pid is still that process, and
// stop it (SIGTERM, then SIGKILL).
package proc

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"time"
)

// Detach makes cmd run in its own session, so it outlives the lab command
// and a ^C in the terminal does not reach it.
func Detach(cmd *exec.Cmd) { detach(cmd) }

// Alive reports whether pid is a live (not zombie) process running bin
// (compared by base name) with an argument containing mark; mark "" checks
// the binary only. A recycled pid running something else is not ours.
func Alive(pid int, bin, mark string) bool {
	if pid <= 0 {
		return false
	}
	return alive(pid, bin, mark)
}

// Stop stops pid when it still runs bin with mark (see Alive): SIGTERM,
// then SIGKILL after timeout. A process that is already gone is no error.
func Stop(pid int, bin, mark string, timeout time.Duration) error {
	if !Alive(pid, bin, mark) {
		return nil
	}
	terminate(pid)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !Alive(pid, bin, mark) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	kill(pid)
	for i := 0; i < 40; i++ {
		if !Alive(pid, bin, mark) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s (pid %d) did not stop", filepath.Base(bin), pid)
}
