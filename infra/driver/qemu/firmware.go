package qemu

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// UEFI is the firmware a VM boots its disk with when the image has no
// kernel beside it (an Ubuntu cloud image, scripts/build-image-gen2.sh):
// OVMF with Secure Boot on and Microsoft's keys enrolled, as a Hyper-V
// Generation 2 VM with the MicrosoftUEFICertificateAuthority template
// boots. Code is mapped read-only; each VM gets its own copy of Vars (its
// NVRAM: boot entries, the enrolled keys).
type UEFI struct {
	Code string `json:"code"`
	Vars string `json:"vars"` // the template; VMs boot a copy
}

// UEFIMachine is the -machine value UEFI needs: Secure Boot's variable
// store is only protected with SMM.
const UEFIMachine = "q35,smm=on"

// ovmfDirs are where Debian's ovmf package (and Ubuntu's) puts OVMF.
var ovmfDirs = []string{"/usr/share/OVMF"}

// FindUEFI finds OVMF's Secure Boot build with Microsoft's keys
// (OVMF_CODE_4M.ms.fd + OVMF_VARS_4M.ms.fd, Debian's ovmf package), in
// $CALCLAB_OVMF_DIR when set.
func FindUEFI() (UEFI, error) {
	dirs := ovmfDirs
	if d := os.Getenv("CALCLAB_OVMF_DIR"); d != "" {
		dirs = []string{d}
	}
	for _, d := range dirs {
		u := UEFI{Code: filepath.Join(d, "OVMF_CODE_4M.ms.fd"), Vars: filepath.Join(d, "OVMF_VARS_4M.ms.fd")}
		_, cerr := os.Stat(u.Code)
		_, verr := os.Stat(u.Vars)
		if cerr == nil && verr == nil {
			return u, nil
		}
	}
	return UEFI{}, fmt.Errorf("UEFI firmware with Secure Boot (OVMF_CODE_4M.ms.fd, OVMF_VARS_4M.ms.fd) not found in %v: an image without a kernel beside it boots through UEFI; install Debian's ovmf package", dirs)
}

// Args are QEMU's arguments for this firmware, with vars as the VM's own
// NVRAM (made by CopyVars); -machine must be UEFIMachine.
func (u UEFI) Args(vars string) []string {
	return []string{
		"-global", "driver=cfi.pflash01,property=secure,value=on",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + u.Code,
		"-drive", "if=pflash,format=raw,unit=1,file=" + vars,
	}
}

// CopyVars makes dst, a VM's NVRAM, from the template unless it exists
// (a VM keeps its NVRAM across restarts, as on Hyper-V).
func (u UEFI) CopyVars(dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	src, err := os.Open(u.Vars)
	if err != nil {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	defer src.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return fmt.Errorf("UEFI variables: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("UEFI variables: %w", err)
	}
	return os.Rename(tmp, dst)
}
