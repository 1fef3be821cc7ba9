package hyperv

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
	"github.com/calclab/calclab/internal/sshdtest"
	"github.com/calclab/calclab/provision/sshkeys"
)

func TestSFTPPath(t *testing.T) {
	for in, want := range map[string]string{
		`C:\ProgramData\calclab\lab\seed.iso`: "/C:/ProgramData/calclab/lab/seed.iso",
		`D:\Hyper-V\a b\base.vhdx`:            "/D:/Hyper-V/a b/base.vhdx",
	} {
		if got := SFTPPath(in); got != want {
			t.Errorf("SFTPPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSFTPFilesRealSSHD uploads a seed through the SSH transport's
// connection with SFTP to a real sshd's sftp-server (here a Linux one, so
// the Windows path is mapped under a temporary directory), twice: the
// second upload replaces the first.
func TestSFTPFilesRealSSHD(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	signer, auth, err := sshkeys.EnsureKeyPair(filepath.Join(dir, "key"))
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, filepath.Join(dir, "sshd"), auth, 0)
	tr := &ps.SSH{Addr: srv.Addr, Config: &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey), Timeout: 10 * time.Second}}
	defer tr.Close()
	root := filepath.Join(dir, "host")
	files := &SFTPFiles{T: tr, Path: func(win string) string { return root + SFTPPath(win) }}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	win := `C:\ProgramData\calclab\lab\master\seed.iso`
	for _, content := range []string{"first seed", "second, longer seed"} {
		if err := files.Put(ctx, win, bytes.NewReader([]byte(content))); err != nil {
			t.Fatalf("%v\n%s", err, srv.Log())
		}
		got, err := os.ReadFile(filepath.Join(root, "C:", "ProgramData", "calclab", "lab", "master", "seed.iso"))
		if err != nil || string(got) != content {
			t.Fatalf("uploaded %q, %v; want %q", got, err, content)
		}
	}
}
