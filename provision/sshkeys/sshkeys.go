// Package sshkeys holds the lab's SSH identity and the host keys of its
// nodes: an ed25519 key pair the lab logs in with (OpenSSH formats, so
// `ssh -i .lab/id_ed25519` works too) and a known_hosts file that trusts a
// node's host key on first contact and refuses a changed one afterwards.
//
// There is no way to turn host key checking off in this package.
package sshkeys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Names of the key pair's files in the directory given to EnsureKeyPair.
const (
	PrivateKeyFile = "id_ed25519"
	PublicKeyFile  = "id_ed25519.pub"
)

// KeyComment is the comment of a generated key.
const KeyComment = "calclab-lab"

// EnsureKeyPair loads the ed25519 key pair in dir, or generates it there
// when there is none: id_ed25519 (OpenSSH private key, mode 0600, no
// passphrase) and id_ed25519.pub (authorized_keys line). It returns the
// signer to log in with and the public key as one authorized_keys line (no
// newline), to put in cloud-init's ssh_authorized_keys.
//
// A private key readable by others is made 0600 (ssh -i refuses it
// otherwise); a missing or stale .pub is rewritten from the private key.
func EnsureKeyPair(dir string) (signer ssh.Signer, authorizedKey string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("sshkeys: %w", err)
	}
	privPath := filepath.Join(dir, PrivateKeyFile)
	pubPath := filepath.Join(dir, PublicKeyFile)

	data, err := os.ReadFile(privPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		signer, err = generate(privPath)
		if err != nil {
			return nil, "", err
		}
	case err != nil:
		return nil, "", fmt.Errorf("sshkeys: %w", err)
	default:
		signer, err = ssh.ParsePrivateKey(data)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, "", fmt.Errorf("sshkeys: %s is protected by a passphrase; the lab needs a key without one (remove the file to have a new one made)", privPath)
			}
			return nil, "", fmt.Errorf("sshkeys: %s is not an SSH private key: %w (remove it to have a new one made)", privPath, err)
		}
		if fi, err := os.Stat(privPath); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(privPath, 0o600); err != nil {
				return nil, "", fmt.Errorf("sshkeys: %w", err)
			}
		}
	}

	authorizedKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))) + " " + KeyComment
	// Rewrite the .pub when it is missing or holds another key.
	if old, err := os.ReadFile(pubPath); err != nil || !samePublicKey(old, signer.PublicKey()) {
		if err := WriteFileAtomic(pubPath, []byte(authorizedKey+"\n"), 0o644); err != nil {
			return nil, "", fmt.Errorf("sshkeys: %w", err)
		}
	}
	return signer, authorizedKey, nil
}

func generate(privPath string) (ssh.Signer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("sshkeys: generate key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, KeyComment)
	if err != nil {
		return nil, fmt.Errorf("sshkeys: encode key: %w", err)
	}
	if err := WriteFileAtomic(privPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("sshkeys: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, fmt.Errorf("sshkeys: %w", err)
	}
	return signer, nil
}

func samePublicKey(line []byte, key ssh.PublicKey) bool {
	pub, _, _, _, err := ssh.ParseAuthorizedKey(line)
	return err == nil && bytes.Equal(pub.Marshal(), key.Marshal())
}

// WriteFileAtomic writes data to a temporary file next to path, with perm,
// and renames it into place: a reader at the same time (ssh -F reading the
// lab's ssh_config while another `lab ssh` rewrites it) sees the old file
// or the new one, never a truncated one.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// KnownHosts is a known_hosts file (OpenSSH format, usable with
// `ssh -o UserKnownHostsFile=...`) kept with trust on first use: the first
// key a host offers is recorded, later connections must offer that key.
// Hosts are told apart by the address dialled, "[host]:port" like OpenSSH,
// so two VMs reached through 127.0.0.1 on different forwarded ports are
// two hosts. Safe for concurrent use.
type KnownHosts struct {
	path string
	mu   sync.Mutex
}

// OpenKnownHosts uses the known_hosts file at path (e.g. .lab/known_hosts),
// creating it (and its directory) empty if missing.
func OpenKnownHosts(path string) (*KnownHosts, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("sshkeys: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sshkeys: %w", err)
	}
	f.Close()
	return &KnownHosts{path: path}, nil
}

// Path is the file's path.
func (k *KnownHosts) Path() string { return k.path }

// HostKeyChangedError is returned when a host offers a key other than the
// one recorded for it.
type HostKeyChangedError struct {
	Host  string // as recorded: "[127.0.0.1]:2222", "10.10.0.11"
	File  string
	Line  int    // line of the recorded key in File
	Known string // SHA256 fingerprint of the recorded key
	Got   string // SHA256 fingerprint of the offered key
}

func (e *HostKeyChangedError) Error() string {
	return fmt.Sprintf("ssh: the host key of %s has changed: %s:%d has %s, the host offered %s. "+
		"If the node was recreated, forget its old key (remove line %d of %s); "+
		"otherwise someone may be intercepting the connection",
		e.Host, e.File, e.Line, e.Known, e.Got, e.Line, e.File)
}

// HostKeyCallback checks host keys against the file: an unknown host's key
// is recorded and accepted, a known host must offer its recorded key. The
// hostname is the address given to ssh.Dial ("127.0.0.1:2222").
func (k *KnownHosts) HostKeyCallback() ssh.HostKeyCallback {
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		return k.check(hostname, key)
	}
}

func (k *KnownHosts) check(hostname string, key ssh.PublicKey) error {
	host := knownhosts.Normalize(hostname)
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, err := k.read()
	if err != nil {
		return err
	}
	var known *entry
	for i := range entries {
		e := &entries[i]
		if !e.matches(host) {
			continue
		}
		if bytes.Equal(e.key.Marshal(), key.Marshal()) {
			return nil
		}
		if known == nil || e.key.Type() == key.Type() {
			known = e
		}
	}
	if known != nil {
		return &HostKeyChangedError{
			Host: host, File: k.path, Line: known.line,
			Known: ssh.FingerprintSHA256(known.key), Got: ssh.FingerprintSHA256(key),
		}
	}
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("sshkeys: record host key: %w", err)
	}
	_, werr := f.WriteString(knownhosts.Line([]string{host}, key) + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("sshkeys: record host key: %w", err)
	}
	return nil
}

// Known reports the keys recorded for hostname ("host:port" or "host").
func (k *KnownHosts) Known(hostname string) ([]ssh.PublicKey, error) {
	host := knownhosts.Normalize(hostname)
	k.mu.Lock()
	defer k.mu.Unlock()
	entries, err := k.read()
	if err != nil {
		return nil, err
	}
	var keys []ssh.PublicKey
	for _, e := range entries {
		if e.matches(host) {
			keys = append(keys, e.key)
		}
	}
	return keys, nil
}

// HostKeyAlgorithms lists the algorithms of the keys recorded for
// hostname, for ssh.ClientConfig.HostKeyAlgorithms, so that a host with a
// recorded key is asked for that kind of key again (nil when unknown: the
// client's defaults).
func (k *KnownHosts) HostKeyAlgorithms(hostname string) ([]string, error) {
	keys, err := k.Known(hostname)
	if err != nil {
		return nil, err
	}
	var algos []string
	seen := map[string]bool{}
	for _, key := range keys {
		for _, a := range algorithmsFor(key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos, nil
}

func algorithmsFor(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// ClientConfig is an ssh.ClientConfig for user at hostname ("host:port")
// logging in with signer and checking the host key against k.
func (k *KnownHosts) ClientConfig(user string, signer ssh.Signer, hostname string) (*ssh.ClientConfig, error) {
	algos, err := k.HostKeyAlgorithms(hostname)
	if err != nil {
		return nil, err
	}
	return &ssh.ClientConfig{
		User:              user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   k.HostKeyCallback(),
		HostKeyAlgorithms: algos,
	}, nil
}

// Forget removes every key recorded for hostname ("host:port" or "host"),
// for when the node is recreated with a new host key. Forgetting an
// unknown host does nothing.
func (k *KnownHosts) Forget(hostname string) error {
	host := knownhosts.Normalize(hostname)
	k.mu.Lock()
	defer k.mu.Unlock()
	data, err := os.ReadFile(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sshkeys: %w", err)
	}
	var out bytes.Buffer
	removed := false
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if e, ok := parseEntry(line, 0); ok && e.matches(host) {
			// Drop just this host from a line listing several.
			rest := e.hostsExcept(host)
			removed = true
			if len(rest) == 0 {
				continue
			}
			line = []byte(knownhosts.Line(rest, e.key) + "\n")
		}
		out.Write(line)
	}
	if !removed {
		return nil
	}
	if err := WriteFileAtomic(k.path, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("sshkeys: %w", err)
	}
	return nil
}

type entry struct {
	hosts []string
	key   ssh.PublicKey
	line  int
}

func (e *entry) matches(host string) bool {
	for _, h := range e.hosts {
		if h == host {
			return true
		}
	}
	return false
}

func (e *entry) hostsExcept(host string) []string {
	var rest []string
	for _, h := range e.hosts {
		if h != host {
			rest = append(rest, h)
		}
	}
	return rest
}

// parseEntry parses one plain known_hosts line. Comments, markers
// (@revoked, @cert-authority) and hashed or wildcard host names are not
// this package's and are skipped (and kept by Forget).
func parseEntry(line []byte, n int) (entry, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] == '#' || line[0] == '@' || line[0] == '|' {
		return entry{}, false
	}
	fields := bytes.Fields(line)
	if len(fields) < 3 {
		return entry{}, false
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(bytes.Join(fields[1:], []byte(" ")))
	if err != nil {
		return entry{}, false
	}
	var hosts []string
	for _, h := range strings.Split(string(fields[0]), ",") {
		if h != "" && !strings.ContainsAny(h, "*?!") {
			hosts = append(hosts, h)
		}
	}
	return entry{hosts: hosts, key: key, line: n}, len(hosts) > 0
}

func (k *KnownHosts) read() ([]entry, error) {
	data, err := os.ReadFile(k.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sshkeys: %w", err)
	}
	var entries []entry
	for i, line := range bytes.Split(data, []byte("\n")) {
		if e, ok := parseEntry(line, i+1); ok {
			entries = append(entries, e)
		}
	}
	return entries, nil
}
