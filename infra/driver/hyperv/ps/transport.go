package ps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Local runs programs on this machine (lab on the Windows host itself).
type Local struct{}

// Exec implements Transport.
func (Local) Exec(ctx context.Context, argv []string, stdin []byte) ([]byte, []byte, int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = bytes.NewReader(stdin)
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		return stdout.Bytes(), stderr.Bytes(), ee.ExitCode(), nil
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, nil, 0, fmt.Errorf("%s not found: lab drives Hyper-V through Windows PowerShell; on Linux or macOS name a Windows host in lab.yaml (hyperv: {host: ..., user: ...}) or use lab plan: %w", argv[0], err)
		}
		return nil, nil, 0, err
	}
	return stdout.Bytes(), stderr.Bytes(), 0, nil
}

// MaxCommandLine implements Transport.
func (Local) MaxCommandLine() int { return CreateProcessMax }

// Where implements Transport.
func (Local) Where() string { return "this machine" }

// SSH runs programs on a Windows host over SSH. The far side's shell is
// cmd.exe (or PowerShell, when the host's OpenSSH DefaultShell says so):
// every argument must be a plain word that neither shell changes, which
// the -EncodedCommand form always is.
type SSH struct {
	// Addr is host:port of the Windows host's OpenSSH server.
	Addr string
	// Config authenticates to it and checks its host key.
	Config *ssh.ClientConfig
	// MaxLine overrides MaxCommandLine (default CmdExeMax).
	MaxLine int

	mu     sync.Mutex
	client *ssh.Client
}

// plainWord is what cmd.exe and PowerShell both pass through unchanged.
var plainWord = regexp.MustCompile(`^[A-Za-z0-9+/=._:\\-]+$`)

// Client returns the connection to the host, dialling it the first time
// (and again after it broke).
func (t *SSH) Client(ctx context.Context) (*ssh.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client != nil {
		return t.client, nil
	}
	if t.Config == nil {
		return nil, errors.New("ps: ssh: no client config")
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("Windows host %s: %w (is its OpenSSH Server running and port 22 open in its firewall?)", t.Addr, err)
	}
	dl, _ := dctx.Deadline()
	_ = conn.SetDeadline(dl)
	stop := context.AfterFunc(dctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	cc, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, t.Config)
	stop()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("Windows host %s: ssh %s@%s: %w", t.Addr, t.Config.User, t.Addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	t.client = ssh.NewClient(cc, chans, reqs)
	return t.client, nil
}

// Close closes the connection.
func (t *SSH) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == nil {
		return nil
	}
	err := t.client.Close()
	t.client = nil
	return err
}

func (t *SSH) drop(c *ssh.Client) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.client == c {
		t.client.Close()
		t.client = nil
	}
}

// Exec implements Transport.
func (t *SSH) Exec(ctx context.Context, argv []string, stdin []byte) ([]byte, []byte, int, error) {
	for _, a := range argv {
		if !plainWord.MatchString(a) {
			return nil, nil, 0, fmt.Errorf("ps: ssh: argument %q would be changed by the far side's shell", a)
		}
	}
	line := strings.Join(argv, " ")
	if len(line) > t.MaxCommandLine() {
		return nil, nil, 0, fmt.Errorf("ps: ssh: command line of %d characters is longer than the %d cmd.exe accepts", len(line), t.MaxCommandLine())
	}
	c, err := t.Client(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	s, err := c.NewSession()
	if err != nil {
		t.drop(c) // a broken connection: dial again next time
		return nil, nil, 0, fmt.Errorf("Windows host %s: new session: %w", t.Addr, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	s.Stdin = bytes.NewReader(stdin)
	stop := context.AfterFunc(ctx, func() { s.Close() })
	err = s.Run(line)
	stop()
	if ctx.Err() != nil {
		return nil, nil, 0, ctx.Err()
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), stderr.Bytes(), ee.ExitStatus(), nil
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("Windows host %s: %w", t.Addr, err)
	}
	return stdout.Bytes(), stderr.Bytes(), 0, nil
}

// MaxCommandLine implements Transport.
func (t *SSH) MaxCommandLine() int {
	if t.MaxLine > 0 {
		return t.MaxLine
	}
	return CmdExeMax
}

// Where implements Transport.
func (t *SSH) Where() string { return "Windows host " + t.Addr }
