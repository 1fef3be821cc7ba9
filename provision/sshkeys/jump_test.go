package sshkeys_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/sshdtest"
	"github.com/calclab/calclab/provision/sshkeys"
)

// TestDialThroughJumpHost reaches a node's sshd through another sshd (the
// remote Hyper-V host of a lab) with Target.Jump, both real OpenSSH
// servers; then OpenSSH's own client does the same with the rendered
// ssh_config's ProxyJump.
func TestDialThroughJumpHost(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "ssh")
	_, auth, err := sshkeys.EnsureKeyPair(keyDir)
	if err != nil {
		t.Fatal(err)
	}
	jump := sshdtest.Start(t, filepath.Join(dir, "jump"), auth, 0)
	node := sshdtest.Start(t, filepath.Join(dir, "node"), auth, 0)
	kh := filepath.Join(dir, "known_hosts")
	target := sshkeys.Target{Node: "slave-1", Addr: node.Addr, User: node.User, KeyDir: keyDir, KnownHosts: kh,
		Jump: &sshkeys.Target{Node: "hyperv-host", Addr: jump.Addr, User: jump.User, KeyDir: keyDir, KnownHosts: kh}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	c, err := target.Dial(ctx)
	if err != nil {
		t.Fatalf("%v\njump sshd:\n%s", err, jump.Log())
	}
	out, err := sshkeys.Run(ctx, c, "echo through-the-jump")
	c.Close()
	if err != nil || strings.TrimSpace(string(out)) != "through-the-jump" {
		t.Fatalf("run: %q, %v", out, err)
	}
	// The node was reached from the jump host, not dialled directly.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(jump.Log(), "direct-tcpip") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(jump.Log(), "direct-tcpip") && !strings.Contains(jump.Log(), "Accepted publickey") {
		t.Fatalf("jump sshd saw no forwarding:\n%s", jump.Log())
	}

	cfg, err := sshkeys.OpenSSHConfig("test", []sshkeys.Target{target})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cfg, "Host hyperv-host\n") || !strings.Contains(cfg, "  ProxyJump hyperv-host\n") {
		t.Fatalf("ssh_config:\n%s", cfg)
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		t.Logf("OpenSSH client not installed: ProxyJump through ssh_config not exercised")
		return
	}
	conf := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, ssh, "-F", conf, "-o", "BatchMode=yes", "slave-1", "echo", "via-openssh")
	got, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "via-openssh" {
		t.Fatalf("ssh -F ssh_config slave-1: %q, %v\n%s", got, err, cfg)
	}
}
