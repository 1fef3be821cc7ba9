package qemu

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/provision/sshkeys"
)

// The lab's SSH client key lives in <Dir>/ssh/id_ed25519 (OpenSSH format,
// so `ssh -F .lab/ssh_config` uses the same file); host keys are trusted on
// first use into <Dir>/known_hosts (OpenSSH format too). Both through
// provision/sshkeys, as provision/deploy uses them.

func (d *Driver) keyDir() string         { return filepath.Join(d.Dir, "ssh") }
func (d *Driver) keyFile() string        { return filepath.Join(d.keyDir(), sshkeys.PrivateKeyFile) }
func (d *Driver) knownHostsFile() string { return filepath.Join(d.Dir, "known_hosts") }

// dial opens an SSH connection to addr as user, checking the host key
// against hostKeys; a handshake is bounded by 20 s and by ctx.
func dial(ctx context.Context, addr, user string, signer ssh.Signer, hostKeys *sshkeys.KnownHosts) (*ssh.Client, error) {
	cfg, err := hostKeys.ClientConfig(user, signer, addr)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 20 * time.Second
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake has no context; bound it with the connection deadline.
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(dctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	stop()
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// run runs cmd on the client and returns its stdout and stderr together;
// ctx ending closes the connection.
func run(ctx context.Context, c *ssh.Client, cmd string) ([]byte, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out lockedBuffer
	s.Stdout, s.Stderr = &out, &out
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err = s.Run(cmd)
	if ctx.Err() != nil {
		return out.Bytes(), ctx.Err()
	}
	return out.Bytes(), err
}

// lockedBuffer is a buffer stdout and stderr can share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}
