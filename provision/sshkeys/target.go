package sshkeys

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/calclab/calclab/internal/deadpeer"
	"golang.org/x/crypto/ssh"
)

// Target is where a node's SSH server is reached from this machine, as
// whom, and with which key and host-key file: the one description of an
// SSH endpoint that the drivers hand out (driver.Driver.SSHTarget) and
// that deploy, the readiness wait, `lab ssh`, `lab exec` and ssh-config use.
type Target struct {
	Node       string // node name, for errors and ssh_config's Host
	Addr       string // host:port
	User       string // login user with passwordless sudo
	KeyDir     string // holds id_ed25519 (see EnsureKeyPair)
	KnownHosts string // trusted-on-first-use host keys (OpenSSH format)
	// Jump, when set, is the SSH server this target is reached through
	// (OpenSSH's ProxyJump): a remote Hyper-V host whose internal switch
	// only it can reach. Its Node names it in ssh_config.
	Jump *Target
}

// KeyFile is the private key's path.
func (t Target) KeyFile() string { return filepath.Join(t.KeyDir, PrivateKeyFile) }

// DialTimeout bounds one dial and handshake.
const DialTimeout = 20 * time.Second

// Dial opens an SSH connection to t with its key, checking the host key
// against t.KnownHosts (recorded on first contact, refused if it changes).
// The dial and handshake are bounded by DialTimeout and by ctx.
func (t Target) Dial(ctx context.Context) (*ssh.Client, error) {
	signer, _, err := EnsureKeyPair(t.KeyDir)
	if err != nil {
		return nil, err
	}
	hostKeys, err := OpenKnownHosts(t.KnownHosts)
	if err != nil {
		return nil, err
	}
	if t.Jump == nil {
		c, err := DialWith(ctx, t.Addr, t.User, signer, hostKeys)
		if err != nil {
			return nil, fmt.Errorf("ssh %s@%s (%s): %w", t.User, t.Addr, t.Node, err)
		}
		return c, nil
	}
	jc, err := t.Jump.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("ssh %s@%s (%s) through %s: %w", t.User, t.Addr, t.Node, t.Jump.Node, err)
	}
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	conn, err := jc.DialContext(dctx, "tcp", t.Addr)
	if err != nil {
		jc.Close()
		return nil, fmt.Errorf("ssh %s@%s (%s): %s cannot reach it: %w", t.User, t.Addr, t.Node, t.Jump.Node, err)
	}
	c, err := handshake(ctx, dctx, conn, t.Addr, t.User, signer, hostKeys)
	if err != nil {
		jc.Close()
		return nil, fmt.Errorf("ssh %s@%s (%s) through %s: %w", t.User, t.Addr, t.Node, t.Jump.Node, err)
	}
	// The jump connection lives as long as the node's.
	go func() { c.Wait(); jc.Close() }()
	return c, nil
}

// DialWith is Dial with the signer and host keys already open.
func DialWith(ctx context.Context, addr, user string, signer ssh.Signer, hostKeys *KnownHosts) (*ssh.Client, error) {
	if hostKeys == nil {
		return nil, fmt.Errorf("no known_hosts (host keys are always checked)")
	}
	dctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	// A VM that dies while a command runs or a file uploads fails the
	// connection within about 30s instead of leaving lab up waiting.
	conn, err := deadpeer.SSH.Dialer(0, nil).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return handshake(ctx, dctx, conn, addr, user, signer, hostKeys)
}

// handshake runs the SSH client handshake over conn (closed on failure),
// bounded by dctx.
func handshake(ctx, dctx context.Context, conn net.Conn, addr, user string, signer ssh.Signer, hostKeys *KnownHosts) (*ssh.Client, error) {
	cfg, err := hostKeys.ClientConfig(user, signer, addr)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cfg.Timeout = DialTimeout
	// The handshake has no context; bound it with the connection deadline.
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline)
	// A connection through a jump host (an SSH channel) has no
	// deadlines: closing it is what ends a stuck handshake there.
	stop := context.AfterFunc(dctx, func() {
		if conn.SetDeadline(time.Unix(1, 0)) != nil {
			conn.Close()
		}
	})
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	stopped := stop()
	if err != nil {
		conn.Close()
		if !stopped && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// Run runs cmd on c and returns its stdout and stderr together; ctx
// ending closes the connection.
func Run(ctx context.Context, c *ssh.Client, cmd string) ([]byte, error) {
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

// OpenSSHConfig renders an OpenSSH client config with one Host entry per
// target, for `ssh -F <file> <node>`; header is written as a comment.
func OpenSSHConfig(header string, targets []Target) (string, error) {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(header), "\n") {
		fmt.Fprintf(&b, "# %s\n", l)
	}
	var all []Target
	seen := map[string]bool{}
	for _, t := range targets {
		if t.Jump != nil && !seen[t.Jump.Node] {
			seen[t.Jump.Node] = true
			all = append(all, *t.Jump)
		}
	}
	all = append(all, targets...)
	for _, t := range all {
		host, port, err := net.SplitHostPort(t.Addr)
		if err != nil {
			return "", fmt.Errorf("node %s: ssh address %q: %w", t.Node, t.Addr, err)
		}
		key, err := filepath.Abs(t.KeyFile())
		if err != nil {
			return "", err
		}
		kh, err := filepath.Abs(t.KnownHosts)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "\nHost %s\n", t.Node)
		fmt.Fprintf(&b, "  HostName %s\n  Port %s\n  User %s\n", host, port, t.User)
		fmt.Fprintf(&b, "  IdentityFile %s\n  IdentitiesOnly yes\n", quoteSSH(key))
		fmt.Fprintf(&b, "  UserKnownHostsFile %s\n  StrictHostKeyChecking accept-new\n", quoteSSH(kh))
		if t.Jump != nil {
			fmt.Fprintf(&b, "  ProxyJump %s\n", t.Jump.Node)
		}
		// A VM that died ends the session within about 30s, as the
		// Go connections do (deadpeer.SSH), instead of leaving it hanging.
		b.WriteString("  ServerAliveInterval 10\n  ServerAliveCountMax 3\n")
		b.WriteString("  LogLevel ERROR\n")
	}
	return b.String(), nil
}

func quoteSSH(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return strconv.Quote(p)
	}
	return p
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
