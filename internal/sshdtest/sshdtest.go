// Package sshdtest starts a real OpenSSH server for tests, on 127.0.0.1,
// with its own host key, config and authorized_keys in a directory the
// test owns, and stops it (by its own pid) when the test ends.
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/freeport"
	"golang.org/x/crypto/ssh"
)

// Server is a real OpenSSH server started by a test.
type Server struct {
	t       *testing.T
	dir     string
	Addr    string
	User    string
	HostKey ssh.PublicKey
	cmd     *exec.Cmd
	exited  chan struct{} // closed when sshd has exited
	log     *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for sshd's output and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

const sshdPath = "/usr/sbin/sshd"

// Require skips the test when OpenSSH's server is not installed, or
// fails it when $CI is set (CI must run it).
func Require(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: this test needs a real OpenSSH server (apt-get install openssh-server)", sshdPath)
		}
		t.Skipf("%s not found (apt-get install openssh-server)", sshdPath)
	}
}

// Start starts sshd accepting authorizedKey for the current user. port 0
// picks a free one. extra are more sshd_config lines (SetEnv PATH=...).
func Start(t *testing.T, dir, authorizedKey string, port int, extra ...string) *Server {
	t.Helper()
	Require(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A fresh host key every start: a restarted sshd is a "recreated VM".
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "test host key")
	if err != nil {
		t.Fatal(err)
	}
	hostKeyFile := filepath.Join(dir, "ssh_host_ed25519_key")
	os.Remove(hostKeyFile)
	if err := os.WriteFile(hostKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authFile, []byte(authorizedKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sftpServer := "internal-sftp"
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err == nil {
		sftpServer = "/usr/lib/openssh/sftp-server"
	}
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory
		// (systemd's tmpfiles makes it on a real system).
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}

	for attempt := 0; ; attempt++ {
		p := port
		if p == 0 {
			p = FreePort(t)
		}
		conf := filepath.Join(dir, "sshd_config")
		config := strings.Join([]string{
			fmt.Sprintf("Port %d", p),
			"ListenAddress 127.0.0.1",
			"HostKey " + hostKeyFile,
			"PidFile " + filepath.Join(dir, "sshd.pid"),
			"AuthorizedKeysFile " + authFile,
			"UsePAM no",
			"StrictModes no",
			"PermitRootLogin prohibit-password",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"AllowUsers " + u.Username,
			"Subsystem sftp " + sftpServer,
			"LogLevel VERBOSE",
		}, "\n") + "\n" + strings.Join(append(extra, ""), "\n")
		if err := os.WriteFile(conf, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		s := &Server{t: t, dir: dir, Addr: fmt.Sprintf("127.0.0.1:%d", p), User: u.Username, HostKey: hostPub, log: &syncBuffer{}, exited: make(chan struct{})}
		// -D: stay in the foreground (a child we can stop), -e: log to stderr.
		s.cmd = exec.Command(sshdPath, "-D", "-e", "-f", conf)
		s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { s.cmd.Wait(); close(s.exited) }()
		if err := s.waitListening(); err != nil {
			if attempt < 3 && port == 0 && strings.Contains(s.log.String(), "Address already in use") {
				continue
			}
			t.Fatalf("sshd did not start: %v\n%s", err, s.log)
		}
		t.Cleanup(func() { s.Stop() })
		return s
	}
}

func (s *Server) waitListening() error {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", s.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("not listening on %s after 10s", s.Addr)
}

// Stop stops the sshd this test started (by its pid only) and waits for it
// to exit, so its port can be reused. Connections already accepted live on
// in sshd's per-connection children until their clients close them.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return
	case <-time.After(5 * time.Second):
	}
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.t.Errorf("sshd (pid %d) did not exit", s.cmd.Process.Pid)
	}
}

// FreePort returns an unused loopback port (see package freeport).
func FreePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Log is what sshd printed so far (it runs with LogLevel VERBOSE).
func (s *Server) Log() string { return s.log.String() }
