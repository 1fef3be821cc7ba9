package hyperv

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"github.com/pkg/sftp"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
)

// HostFiles puts files (the base VHDX, the seeds) on the Windows host.
type HostFiles interface {
	Put(ctx context.Context, hostPath string, r io.Reader) error
}

// LocalFiles writes them on this machine (lab runs on the host itself).
type LocalFiles struct{}

// Put implements HostFiles.
func (LocalFiles) Put(_ context.Context, p string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SFTPFiles uploads them over the SSH transport's connection with SFTP
// (Windows' OpenSSH Server has it). Path maps a Windows path to the
// server's form (default SFTPPath: /C:/...).
type SFTPFiles struct {
	T    *ps.SSH
	Path func(string) string
}

// Put implements HostFiles.
func (s *SFTPFiles) Put(ctx context.Context, p string, r io.Reader) error {
	c, err := s.T.Client(ctx)
	if err != nil {
		return err
	}
	sc, err := sftp.NewClient(c)
	if err != nil {
		return fmt.Errorf("sftp to the Windows host: %w", err)
	}
	defer sc.Close()
	mapPath := s.Path
	if mapPath == nil {
		mapPath = SFTPPath
	}
	dst := mapPath(p)
	if err := sc.MkdirAll(path.Dir(dst)); err != nil {
		return fmt.Errorf("sftp mkdir %s: %w", path.Dir(dst), err)
	}
	tmp := dst + ".part"
	f, err := sc.Create(tmp)
	if err != nil {
		return fmt.Errorf("sftp create %s: %w", tmp, err)
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	if _, err := f.ReadFrom(r); err != nil {
		f.Close()
		return fmt.Errorf("sftp upload %s: %w", dst, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	_ = sc.Remove(dst)
	if err := sc.Rename(tmp, dst); err != nil {
		return fmt.Errorf("sftp rename %s: %w", dst, err)
	}
	return nil
}
