package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ImageName is the name of the image scripts/build-image.sh builds.
const ImageName = "debian-12"

// Image is a bootable VM image: an ext4 root file system on a whole qcow2
// disk plus the kernel and initrd that boot it (root=/dev/vda).
type Image struct {
	Disk   string `json:"disk"`
	Kernel string `json:"kernel"`
	Initrd string `json:"initrd"`
}

// CacheDir is where scripts/build-image.sh keeps images:
// $CALCLAB_CACHE, else ~/.cache/calclab.
func CacheDir() string {
	if d := os.Getenv("CALCLAB_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "calclab-cache")
	}
	return filepath.Join(home, ".cache", "calclab")
}

// ImageAt returns the image whose disk is the qcow2 at path (symlinks
// resolved, so overlays point at the versioned file): its kernel and initrd
// are the files next to it ending in .vmlinuz and .initrd, booted directly
// with root=/dev/vda (what scripts/build-image.sh makes). A qcow2 with
// neither file next to it, such as an Ubuntu cloud image the user
// downloaded, boots from its own disk (firmware and the image's
// bootloader); it must have cloud-init with the NoCloud datasource.
func ImageAt(path string) (Image, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Image{}, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", path, err)
	}
	base := strings.TrimSuffix(real, ".qcow2")
	img := Image{Disk: real, Kernel: base + ".vmlinuz", Initrd: base + ".initrd"}
	_, kerr := os.Stat(img.Kernel)
	_, ierr := os.Stat(img.Initrd)
	if os.IsNotExist(kerr) && os.IsNotExist(ierr) {
		if _, err := os.Stat(img.Disk); err != nil {
			return img, fmt.Errorf("image %s: %w", path, err)
		}
		img.Kernel, img.Initrd = "", "" // boots from its own disk
		return img, nil
	}
	for _, f := range []string{img.Disk, img.Kernel, img.Initrd} {
		if _, err := os.Stat(f); err != nil {
			return img, fmt.Errorf("image %s is incomplete: %w (rebuild it: sudo scripts/build-image.sh)", path, err)
		}
	}
	return img, nil
}

// BuildScript is the image build script of the repository that holds
// labFile, or "" when there is none.
func BuildScript(labFile string) string {
	if labFile == "" {
		return ""
	}
	dir := filepath.Dir(labFile)
	for i := 0; i < 4; i++ {
		p := filepath.Join(dir, "scripts", "build-image.sh")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

// FindImage resolves the image a node boots:
//
//   - name, when it names a .qcow2 file (absolute, or relative to the lab
//     file's directory);
//   - name, when it is an image name such as "debian-12": the newest build
//     in CacheDir();
//   - "" (the default): the image of the repository's
//     scripts/build-image.sh (found next to or above labFile) for its current
//     recipe, so a stale image is not booted; without the script, the newest
//     debian-12 build in CacheDir().
func FindImage(ctx context.Context, labFile, name string) (Image, error) {
	switch {
	case strings.HasSuffix(name, ".qcow2"):
		if !filepath.IsAbs(name) && labFile != "" {
			name = filepath.Join(filepath.Dir(labFile), name)
		}
		return ImageAt(name)
	case name != "" && name != ImageName:
		return ImageAt(filepath.Join(CacheDir(), name+".qcow2"))
	}
	if script := BuildScript(labFile); script != "" {
		cmd := exec.CommandContext(ctx, "bash", script, "--print-path")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		path := strings.TrimSpace(out.String())
		var ee *exec.ExitError
		switch {
		case err == nil && path != "":
			return ImageAt(path)
		case errors.As(err, &ee) && path != "":
			return Image{}, fmt.Errorf("the VM image %s is not built (or its recipe changed): run sudo %s (takes a few minutes; needs debootstrap, qemu-utils, e2fsprogs)", path, script)
		default:
			return Image{}, fmt.Errorf("%s --print-path: %v %s", script, err, strings.TrimSpace(errb.String()))
		}
	}
	img, err := ImageAt(filepath.Join(CacheDir(), ImageName+".qcow2"))
	if err != nil {
		return img, fmt.Errorf("no VM image: %w (build it with sudo scripts/build-image.sh)", err)
	}
	return img, nil
}

// virtualSize is the size of a qcow2 disk as the guest sees it.
func virtualSize(ctx context.Context, qemuImg, path string) (int64, error) {
	out, err := exec.CommandContext(ctx, qemuImg, "info", "--output=json", "-U", path).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return 0, fmt.Errorf("qemu-img info %s: %s", path, strings.TrimSpace(string(ee.Stderr)))
		}
		return 0, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	var info struct {
		VirtualSize int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		return 0, fmt.Errorf("qemu-img info %s: %w", path, err)
	}
	return info.VirtualSize, nil
}

// createOverlay makes disk, a copy-on-write qcow2 on top of base, of
// sizeGB GiB (at least the base's size).
func createOverlay(ctx context.Context, qemuImg, base, disk string, sizeGB int) error {
	size := int64(sizeGB) << 30
	if bs, err := virtualSize(ctx, qemuImg, base); err != nil {
		return err
	} else if bs > size {
		size = bs
	}
	tmp := disk + ".tmp"
	_ = os.Remove(tmp)
	out, err := exec.CommandContext(ctx, qemuImg, "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, tmp, fmt.Sprint(size)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("qemu-img create: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return os.Rename(tmp, disk)
}
