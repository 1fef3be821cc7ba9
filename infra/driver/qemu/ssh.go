package qemu

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// The lab's SSH client key lives in <Dir>/ssh/id_ed25519 (OpenSSH format,
// so `ssh -F .lab/ssh_config` uses the same file), host keys are trusted on
// first use into <Dir>/known_hosts (OpenSSH format too).

func (d *Driver) keyDir() string         { return filepath.Join(d.Dir, "ssh") }
func (d *Driver) keyFile() string        { return filepath.Join(d.keyDir(), "id_ed25519") }
func (d *Driver) knownHostsFile() string { return filepath.Join(d.Dir, "known_hosts") }

// ensureKeyPair loads the lab's key, making it first when missing; it
// returns the signer and the authorized_keys line of its public half.
func ensureKeyPair(dir string) (ssh.Signer, string, error) {
	path := filepath.Join(dir, "id_ed25519")
	if data, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, "", fmt.Errorf("lab SSH key %s: %w (remove it to make a new one)", path, err)
		}
		return signer, authorizedLine(signer), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	block, err := ssh.MarshalPrivateKey(priv, "calclab-lab")
	if err != nil {
		return nil, "", err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, "", err
	}
	line := authorizedLine(signer)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(path+".pub", []byte(line+"\n"), 0o644); err != nil {
		return nil, "", err
	}
	return signer, line, nil
}

func authorizedLine(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) + " calclab-lab"
}

var knownHostsMu sync.Mutex

// tofu returns a host key callback that accepts and records the first key
// a host shows and rejects a different one later (StrictHostKeyChecking
// accept-new).
func tofu(file string) ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		knownHostsMu.Lock()
		defer knownHostsMu.Unlock()
		if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
			if err := os.WriteFile(file, nil, 0o600); err != nil {
				return err
			}
		}
		check, err := knownhosts.New(file)
		if err != nil {
			return err
		}
		err = check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) && len(ke.Want) == 0 {
			f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
			return err
		}
		return err
	}
}

// forgetHost drops the known_hosts entries of addr (host:port), for a node
// whose disk was made anew (and so has new host keys).
func forgetHost(file, addr string) error {
	knownHostsMu.Lock()
	defer knownHostsMu.Unlock()
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	want := knownhosts.Normalize(addr)
	var out bytes.Buffer
	for _, line := range strings.SplitAfter(string(data), "\n") {
		hosts, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		drop := false
		for _, h := range strings.Split(hosts, ",") {
			if h == want {
				drop = true
			}
		}
		if !drop {
			out.WriteString(line)
		}
	}
	return os.WriteFile(file, out.Bytes(), 0o600)
}

// dial opens an SSH connection to addr as user.
func dial(ctx context.Context, addr, user string, signer ssh.Signer, hostKey ssh.HostKeyCallback) (*ssh.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake has no context; bound it with a deadline.
	deadline, _ := dctx.Deadline()
	_ = conn.SetDeadline(deadline)
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKey,
		Timeout:         20 * time.Second,
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// run runs cmd on the client and returns its combined output; ctx ending
// closes the connection.
func run(ctx context.Context, c *ssh.Client, cmd string) ([]byte, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out bytes.Buffer
	s.Stdout, s.Stderr = &out, &out
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			c.Close()
		case <-done:
		}
	}()
	err = s.Run(cmd)
	if ctx.Err() != nil {
		return out.Bytes(), ctx.Err()
	}
	return out.Bytes(), err
}
