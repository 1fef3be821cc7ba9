package sshkeys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestEnsureKeyPairRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".lab")
	s1, auth1, err := EnsureKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s1.PublicKey().Type() != ssh.KeyAlgoED25519 {
		t.Errorf("key type %s", s1.PublicKey().Type())
	}
	if strings.ContainsAny(auth1, "\r\n") {
		t.Errorf("authorized key %q is not one line", auth1)
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(auth1))
	if err != nil || !bytes.Equal(pub.Marshal(), s1.PublicKey().Marshal()) || comment != KeyComment {
		t.Fatalf("authorized key %q does not match the signer (%v)", auth1, err)
	}
	priv := filepath.Join(dir, PrivateKeyFile)
	fi, err := os.Stat(priv)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", fi.Mode().Perm())
	}
	pubFile, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil || string(pubFile) != auth1+"\n" {
		t.Errorf("%s = %q, %v; want %q", PublicKeyFile, pubFile, err, auth1+"\n")
	}
	if d, _ := os.Stat(dir); d.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", d.Mode().Perm())
	}

	// Loading gives the same key back and changes nothing.
	before, _ := os.ReadFile(priv)
	s2, auth2, err := EnsureKeyPair(dir)
	if err != nil {
		t.Fatal(err)
	}
	if auth2 != auth1 || !bytes.Equal(s2.PublicKey().Marshal(), s1.PublicKey().Marshal()) {
		t.Error("second EnsureKeyPair returned another key")
	}
	after, _ := os.ReadFile(priv)
	if !bytes.Equal(before, after) {
		t.Error("the private key file was rewritten")
	}
	// Both signers make signatures the public key verifies.
	sig, err := s2.Sign(rand.Reader, []byte("data"))
	if err != nil || s1.PublicKey().Verify([]byte("data"), sig) != nil {
		t.Errorf("signature does not verify: %v", err)
	}

	// A lost .pub is rewritten; a too-open private key is tightened.
	os.Remove(filepath.Join(dir, PublicKeyFile))
	os.Chmod(priv, 0o644)
	if _, _, err := EnsureKeyPair(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, PublicKeyFile)); string(b) != auth1+"\n" {
		t.Errorf(".pub not restored: %q", b)
	}
	if fi, _ := os.Stat(priv); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v after load, want 0600", fi.Mode().Perm())
	}

	// OpenSSH reads the private key (so `ssh -i` works) and derives the
	// same public key.
	if _, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command("ssh-keygen", "-y", "-f", priv).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -y: %v: %s", err, out)
		}
		if got, want := strings.Fields(string(out))[:2], strings.Fields(auth1)[:2]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ssh-keygen -y gives %q, want %q", got, want)
		}
	}
}

func TestEnsureKeyPairRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, PrivateKeyFile), []byte("not a key"), 0o600)
	_, _, err := EnsureKeyPair(dir)
	if err == nil || !strings.Contains(err.Error(), "is not an SSH private key") {
		t.Fatalf("error = %v", err)
	}
}

func TestEnsureKeyPairRejectsPassphrase(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, PrivateKeyFile), pemEncode(block), 0o600)
	_, _, err = EnsureKeyPair(dir)
	if err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("error = %v", err)
	}
}

func newKey(t *testing.T) ssh.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var remote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2222}

func TestKnownHostsTOFU(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".lab", "known_hosts")
	kh, err := OpenKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	cb := kh.HostKeyCallback()
	node1, node2 := newKey(t), newKey(t)

	// First contact records the key.
	if err := cb("127.0.0.1:2222", remote, node1); err != nil {
		t.Fatalf("first contact: %v", err)
	}
	// The same key is accepted again, also by a fresh KnownHosts on the
	// same file (another lab command).
	if err := cb("127.0.0.1:2222", remote, node1); err != nil {
		t.Fatalf("same key: %v", err)
	}
	kh2, err := OpenKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := kh2.HostKeyCallback()("127.0.0.1:2222", remote, node1); err != nil {
		t.Fatalf("same key, reopened: %v", err)
	}
	// Another port is another host (another VM behind the same forward).
	if err := cb("127.0.0.1:2223", remote, node2); err != nil {
		t.Fatalf("other port: %v", err)
	}
	data, _ := os.ReadFile(path)
	if n := strings.Count(string(data), "\n"); n != 2 {
		t.Errorf("known_hosts has %d lines, want 2:\n%s", n, data)
	}
	if !strings.HasPrefix(string(data), "[127.0.0.1]:2222 ssh-ed25519 ") {
		t.Errorf("not OpenSSH known_hosts format:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v", fi.Mode().Perm())
	}

	// The file is what x/crypto's (and OpenSSH's) known_hosts readers expect.
	std, err := knownhosts.New(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := std("127.0.0.1:2222", remote, node1); err != nil {
		t.Errorf("knownhosts.New rejects the recorded key: %v", err)
	}

	algos, err := kh.HostKeyAlgorithms("127.0.0.1:2222")
	if err != nil || len(algos) != 1 || algos[0] != ssh.KeyAlgoED25519 {
		t.Errorf("HostKeyAlgorithms = %v, %v", algos, err)
	}
	if algos, _ := kh.HostKeyAlgorithms("127.0.0.1:9"); algos != nil {
		t.Errorf("HostKeyAlgorithms of an unknown host = %v, want nil", algos)
	}
}

func TestKnownHostsMismatchRejected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	kh, err := OpenKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	cb := kh.HostKeyCallback()
	old, imposter := newKey(t), newKey(t)
	if err := cb("10.10.0.11:22", remote, old); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)

	err = cb("10.10.0.11:22", remote, imposter)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("changed key accepted or wrong error: %v", err)
	}
	if changed.Host != "10.10.0.11" || changed.Line != 1 || changed.Known != ssh.FingerprintSHA256(old) || changed.Got != ssh.FingerprintSHA256(imposter) {
		t.Errorf("error fields %+v", changed)
	}
	for _, s := range []string{"10.10.0.11", "has changed", path + ":1", ssh.FingerprintSHA256(imposter), "recreated"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Error("a rejected key changed known_hosts")
	}
	// Still rejected next time: the imposter's key was not recorded.
	if err := cb("10.10.0.11:22", remote, imposter); err == nil {
		t.Error("changed key accepted the second time")
	}
	if err := cb("10.10.0.11:22", remote, old); err != nil {
		t.Errorf("the recorded key is no longer accepted: %v", err)
	}
}

func TestKnownHostsForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "known_hosts")
	// A line we did not write, listing two hosts, and a comment: Forget
	// keeps what is not the forgotten host's.
	foreign := newKey(t)
	os.WriteFile(path, []byte("# mine\n"+knownhosts.Line([]string{"[127.0.0.1]:2222", "other"}, foreign)+"\n"), 0o600)
	kh, err := OpenKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	cb := kh.HostKeyCallback()
	recreated := newKey(t)
	if err := cb("127.0.0.1:2222", remote, recreated); err == nil {
		t.Fatal("a new key for a known host was accepted before Forget")
	}
	if err := kh.Forget("127.0.0.1:2222"); err != nil {
		t.Fatal(err)
	}
	if err := cb("127.0.0.1:2222", remote, recreated); err != nil {
		t.Fatalf("after Forget the new key should be recorded: %v", err)
	}
	if err := cb("other:22", remote, foreign); err != nil {
		t.Errorf("Forget dropped another host: %v", err)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "# mine\n") {
		t.Errorf("Forget dropped the comment:\n%s", data)
	}
	if err := kh.Forget("never-seen:22"); err != nil {
		t.Errorf("Forget of an unknown host: %v", err)
	}
	if keys, _ := kh.Known("127.0.0.1:2222"); len(keys) != 1 || !bytes.Equal(keys[0].Marshal(), recreated.Marshal()) {
		t.Errorf("Known = %v", keys)
	}
}

// TestKnownHostsConcurrent records many hosts at once (run with -race).
func TestKnownHostsConcurrent(t *testing.T) {
	kh, err := OpenKnownHosts(filepath.Join(t.TempDir(), "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	cb := kh.HostKeyCallback()
	keys := make([]ssh.PublicKey, 20)
	for i := range keys {
		keys[i] = newKey(t)
	}
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if err := cb(fmt.Sprintf("127.0.0.1:%d", 3000+i), remote, k); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i, k := range keys {
		known, err := kh.Known(fmt.Sprintf("127.0.0.1:%d", 3000+i))
		if err != nil || len(known) != 1 || !bytes.Equal(known[0].Marshal(), k.Marshal()) {
			t.Errorf("host %d: %v %v", i, known, err)
		}
	}
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }

// TestWriteFileAtomicNeverShowsAPartialFile: while one goroutine rewrites a
// file, readers see either the old content or the new, whole (what
// os.WriteFile, which truncates first, does not give: a concurrent `lab ssh`
// read an empty ssh_config and tried to resolve "slave-1").
func TestWriteFileAtomicNeverShowsAPartialFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ssh_config")
	versions := [2][]byte{bytes.Repeat([]byte("Host a\n"), 4096), bytes.Repeat([]byte("Host b\n"), 4096)}
	if err := WriteFileAtomic(path, versions[0], 0o644); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, bad atomic.Int64
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(path)
				reads.Add(1)
				if err != nil || !(bytes.Equal(b, versions[0]) || bytes.Equal(b, versions[1])) {
					bad.Add(1)
				}
			}
		})
	}
	for i := range 300 {
		if err := WriteFileAtomic(path, versions[i%2], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad.Load() > 0 || reads.Load() == 0 {
		t.Fatalf("%d of %d reads saw a partial or missing file", bad.Load(), reads.Load())
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v (%v), want 0644", fi.Mode().Perm(), err)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".ssh_config.*")); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}
