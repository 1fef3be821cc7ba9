//go:build windows

package proc

import (
	"os"
	"os/exec"
	"syscall"
)

// On Windows a child already outlives its parent; a new process group
// keeps a ^C in the console from reaching it.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}

// alive cannot read a process's command line without more of the Win32
// API; it checks that the pid can be opened and has not exited.
func alive(pid int, _, _ string) bool {
	h, err := syscall.OpenProcess(syscall.PROCESS_QUERY_INFORMATION, false, uint32(pid))
	if err != nil {
		return false
	}
	defer syscall.CloseHandle(h)
	var code uint32
	if err := syscall.GetExitCodeProcess(h, &code); err != nil {
		return false
	}
	const stillActive = 259
	return code == stillActive
}

// Windows has no SIGTERM for another process: both end it.
func terminate(pid int) { kill(pid) }

func kill(pid int) {
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
}
