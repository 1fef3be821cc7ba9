package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// probeTimeout bounds the KVM probe VM: a working KVM boots the kernel to
// its panic in 1-2 s (TCG takes about 5 s).
const probeTimeout = 15 * time.Second

// probeCache remembers probe results across labs on this machine until it
// reboots: CacheDir()/accel-probe.json, keyed by boot id, QEMU binary and
// kernel.
type probeResult struct {
	Key   string `json:"key"`
	Accel string `json:"accel"`
	Why   string `json:"why"`
}

func probeKey(qemuBin string, img Image) string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	path, _ := exec.LookPath(qemuBin)
	var mtime string
	if fi, err := os.Stat(path); err == nil {
		mtime = fi.ModTime().UTC().Format(time.RFC3339Nano)
	}
	return strings.Join([]string{strings.TrimSpace(string(boot)), path, mtime, img.Kernel, strconv.Itoa(os.Getuid())}, "|")
}

// cachedProbeAccel is probeAccel with its result kept in the cache.
func cachedProbeAccel(ctx context.Context, qemuBin string, img Image, dir string) (accel, why string) {
	file := filepath.Join(CacheDir(), "accel-probe.json")
	key := probeKey(qemuBin, img)
	var r probeResult
	if data, err := os.ReadFile(file); err == nil && json.Unmarshal(data, &r) == nil && r.Key == key && r.Accel != "" {
		return r.Accel, r.Why + " (cached in " + file + ")"
	}
	accel, why = probeAccel(ctx, qemuBin, img, dir)
	if ctx.Err() == nil {
		data, _ := json.Marshal(probeResult{Key: key, Accel: accel, Why: why})
		if os.MkdirAll(CacheDir(), 0o755) == nil {
			_ = os.WriteFile(file, data, 0o644)
		}
	}
	return accel, why
}

// probeAccel returns "kvm" when a KVM guest with -cpu host boots the
// image's kernel to its end (see the package doc), else "tcg"; why says
// what was found. Files go to a temporary directory under dir.
func probeAccel(ctx context.Context, qemuBin string, img Image, dir string) (accel, why string) {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return "tcg", "no /dev/kvm"
		case errors.Is(err, os.ErrPermission):
			return "tcg", "/dev/kvm is not writable by this user (add it to group kvm)"
		}
		return "tcg", fmt.Sprintf("/dev/kvm: %v", err)
	}
	f.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "tcg", err.Error()
	}
	if img.Kernel == "" {
		return "tcg", "the image boots from its own disk, so there is no kernel to probe KVM with (set CALCLAB_QEMU_ACCEL=kvm to force it)"
	}
	tmp, err := os.MkdirTemp(dir, "kvm-probe-")
	if err != nil {
		return "tcg", err.Error()
	}
	defer os.RemoveAll(tmp)
	console := filepath.Join(tmp, "console.log")
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	t0 := time.Now()
	// No disk and no initrd: the kernel initialises the CPU, memory and
	// devices, finds no root file system and panics; panic=-1 reboots at
	// once and -no-reboot turns that into QEMU exiting.
	cmd := exec.CommandContext(ctx, qemuBin,
		"-nodefaults", "-no-user-config", "-machine", "q35",
		"-accel", "kvm", "-cpu", "host", "-m", "256", "-smp", "1",
		"-display", "none", "-vga", "none", "-no-reboot",
		"-serial", "file:"+console,
		"-kernel", img.Kernel, "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent",
	)
	out, err := cmd.CombinedOutput()
	log, _ := os.ReadFile(console)
	ok := strings.Contains(string(log), "Unable to mount root fs") || strings.Contains(string(log), "VFS:")
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		return "tcg", fmt.Sprintf("a KVM probe VM (-cpu host) did not finish booting its kernel in %s (%s)", probeTimeout, lastLine(string(log)))
	case err != nil && !ok:
		return "tcg", fmt.Sprintf("a KVM probe VM (-cpu host) failed: %v %s", err, lastLine(string(out)+string(log)))
	case !ok:
		return "tcg", fmt.Sprintf("a KVM probe VM (-cpu host) exited without its kernel reaching the root mount (%s)", lastLine(string(log)))
	}
	return "kvm", fmt.Sprintf("probe VM booted its kernel under KVM -cpu host in %s", time.Since(t0).Round(time.Millisecond))
}

func lastLine(s string) string {
	if strings.TrimSpace(s) == "" {
		return "no console output"
	}
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
