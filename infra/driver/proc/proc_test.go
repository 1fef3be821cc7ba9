//go:build linux

package proc

import (
	"os/exec"
	"testing"
	"time"
)

func TestAliveAndStop(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	Detach(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	for _, tc := range []struct {
		name      string
		bin, mark string
		want      bool
	}{
		{"binary", "/usr/bin/sleep", "", true},
		{"binary and mark", "sleep", "30", true},
		{"other binary", "qemu-system-x86_64", "", false},
		{"other mark", "sleep", "disk.qcow2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Alive(pid, tc.bin, tc.mark); got != tc.want {
				t.Errorf("Alive(%d, %q, %q) = %v, want %v", pid, tc.bin, tc.mark, got, tc.want)
			}
		})
	}
	if Alive(0, "sleep", "") {
		t.Error("pid 0 is alive")
	}
	start := time.Now()
	if err := Stop(pid, "sleep", "", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if Alive(pid, "sleep", "") {
		t.Fatal("alive after Stop")
	}
	if time.Since(start) > 4*time.Second {
		t.Errorf("SIGTERM did not stop sleep; Stop took %s", time.Since(start))
	}
	if err := Stop(pid, "sleep", "", time.Second); err != nil {
		t.Errorf("Stop of a stopped process: %v", err)
	}
}
