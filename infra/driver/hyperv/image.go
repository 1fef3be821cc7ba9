package hyperv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// MiB is the unit a VHDX's virtual size is aligned to.
const MiB = 1 << 20

// ConvertImage makes dst, a dynamic VHDX whose virtual size is src's
// rounded up to a whole MiB, from src (any format qemu-img reads: the
// Ubuntu cloud image's qcow2, raw, VHD). qemu-img convert alone keeps the
// source's size, which Hyper-V may refuse; so the VHDX is created at the
// aligned size first and filled with convert -n.
func ConvertImage(ctx context.Context, qemuImg, src, dst string) error {
	if qemuImg == "" {
		qemuImg = "qemu-img"
	}
	if _, err := exec.LookPath(qemuImg); err != nil {
		return fmt.Errorf("%s not found: it converts the image to VHDX (apt-get install qemu-utils, brew install qemu; on Windows give a .vhdx or .vhd image instead)", qemuImg)
	}
	if _, err := os.Stat(src); err != nil {
		return &HostError{Step: "image", Problem: ProblemImageMissing + ": " + err.Error(),
			Fix: "Download Ubuntu's cloud image (noble-server-cloudimg-amd64.img) and set hyperv.image in lab.yaml to its path"}
	}
	out, err := run(ctx, qemuImg, "info", "--output=json", src)
	if err != nil {
		return err
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.VirtualSize <= 0 {
		return fmt.Errorf("qemu-img info %s: no virtual size (%v)", src, err)
	}
	size := (info.VirtualSize + MiB - 1) / MiB * MiB
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".part"
	os.Remove(tmp)
	if _, err := run(ctx, qemuImg, "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic", tmp, strconv.FormatInt(size, 10)); err != nil {
		return err
	}
	if _, err := run(ctx, qemuImg, "convert", "-n", "-O", "vhdx", src, tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

func run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
