package deploy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/internal/sshdtest"
	"github.com/calclab/calclab/provision/sshkeys"
)

// fakes writes stand-ins for sudo, systemctl, useradd and id into dir.
// Each appends its name and arguments to the returned log file; sudo then
// runs its arguments (as the same user), systemctl and useradd keep just
// enough state in dir/state for is-enabled and id to answer as a real
// system would.
func fakes(t *testing.T, dir string) (Commands, string) {
	t.Helper()
	log := filepath.Join(dir, "commands.log")
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o755); err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{
		"sudo": `exec "$@"`,
		"systemctl": `
case "$1" in
is-enabled) [ "$2" = --quiet ] && shift; test -f "$STATE/enabled.$2" ;;
enable) if [ "$2" = --now ]; then touch "$STATE/enabled.$3" "$STATE/active.$3"; else touch "$STATE/enabled.$2"; fi ;;
restart|start) touch "$STATE/active.$2" ;;
daemon-reload) ;;
*) echo "fake systemctl: unexpected $*" >&2; exit 1 ;;
esac`,
		"useradd": `
for last; do :; done
echo "$last" >> "$STATE/users"`,
		"id": `
[ "$1" = -u ] || { echo "fake id: unexpected $*" >&2; exit 2; }
grep -qx "$2" "$STATE/users" 2>/dev/null || { echo "id: '$2': no such user" >&2; exit 1; }
echo 999`,
	}
	paths := map[string]string{}
	for name, body := range scripts {
		p := filepath.Join(dir, "fake-"+name)
		script := fmt.Sprintf("#!/bin/sh\nSTATE=%q\necho %q \"$@\" >> %q\n%s\n", state, name, log, body)
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		paths[name] = p
	}
	return Commands{Sudo: paths["sudo"], Systemctl: paths["systemctl"], Useradd: paths["useradd"], ID: paths["id"]}, log
}

// logLines returns the log's lines since the last call, with the fakes'
// directory stripped, keeping only those that change something (not the
// read-only is-enabled / id / sha256sum checks).
func logLines(t *testing.T, log string, seen *int, fakeDir string) []string {
	t.Helper()
	data, err := os.ReadFile(log)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	all := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(data) == 0 {
		all = nil
	}
	var out []string
	for _, l := range all[*seen:] {
		l = strings.ReplaceAll(l, fakeDir+"/fake-", "")
		switch {
		case strings.HasPrefix(l, "id "),
			strings.HasPrefix(l, "systemctl is-enabled"),
			strings.HasPrefix(l, "sudo sh -c for f;"), // sha256sum of the remote files
			strings.HasPrefix(l, "sudo systemctl"),    // logged again by systemctl itself
			strings.HasPrefix(l, "sudo useradd"):
			continue
		case strings.HasPrefix(l, "sudo sh -c install"):
			// sudo sh -c <script> sh <upload> <dst>.calclab-new <sum> <dst>
			f := strings.Fields(l)
			l = "install " + f[len(f)-1]
		}
		out = append(out, l)
	}
	*seen = len(all)
	return out
}

func mtime(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime().UnixNano()
}

func assertFile(t *testing.T, p string, want []byte, mode os.FileMode) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if string(got) != string(want) {
		t.Errorf("%s = %q, want %q", p, got, want)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != mode {
		t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), mode)
	}
}

// TestDeployOverRealSSHWithFakeSystemctl deploys over a real OpenSSH sshd
// (started by the test on 127.0.0.1, logging in as the current user) with
// real SFTP uploads, sha256sum and install — but systemctl, useradd, id and
// sudo are FAKED by shell scripts that log their arguments, and every file
// lands under a temporary Plan.Root instead of /, because this sandbox has
// no systemd. The real systemd path is exercised by the VM end-to-end test.
//
// It checks: the first deploy uploads everything, creates the user,
// reloads systemd and enables --now the unit; a second deploy changes
// nothing and restarts nothing; a changed binary is the only upload and
// causes exactly one restart; a changed env restarts without a
// daemon-reload; the host key is trusted on first use through
// provision/sshkeys, and a changed host key (sshd "recreated") is refused
// until forgotten.
func TestDeployOverRealSSHWithFakeSystemctl(t *testing.T) {
	sshdtest.Require(t)
	tmp := t.TempDir()
	lab := filepath.Join(tmp, ".lab")
	signer, authKey, err := sshkeys.EnsureKeyPair(lab)
	if err != nil {
		t.Fatal(err)
	}
	kh, err := sshkeys.OpenKnownHosts(filepath.Join(lab, "known_hosts"))
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, filepath.Join(tmp, "sshd"), authKey, 0)
	client, err := sshkeys.DialWith(ctx(t), srv.Addr, srv.User, signer, kh)
	if err != nil {
		t.Fatalf("dial: %v\nsshd log:\n%s", err, srv.Log())
	}
	defer client.Close()
	if known, _ := kh.Known(srv.Addr); len(known) != 1 || string(known[0].Marshal()) != string(srv.HostKey.Marshal()) {
		t.Fatalf("the sshd host key was not recorded on first use: %v", known)
	}

	// OpenSSH's own client accepts the key pair (ssh -i) and the
	// known_hosts file written on first use, with strict checking.
	if sshBin, err := exec.LookPath("ssh"); err == nil {
		host, port, _ := net.SplitHostPort(srv.Addr)
		out, err := exec.Command(sshBin, "-i", filepath.Join(lab, sshkeys.PrivateKeyFile),
			"-o", "UserKnownHostsFile="+kh.Path(), "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-o", "IdentitiesOnly=yes", "-F", "none", "-p", port, srv.User+"@"+host, "echo", "ok").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Errorf("OpenSSH client: %v: %s", err, out)
		}
	}

	fakeDir := filepath.Join(tmp, "fakes")
	os.MkdirAll(fakeDir, 0o755)
	cmds, log := fakes(t, fakeDir)
	root := filepath.Join(tmp, "root")
	upload := filepath.Join(tmp, "upload")
	bin := filepath.Join(tmp, "bin")
	os.MkdirAll(bin, 0o755)
	write := func(name, content string) string {
		p := filepath.Join(bin, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plan := Plan{
		Role: "master",
		Binaries: map[string]string{
			"master": write("master", "#!/bin/sh\necho master v1\n"),
			"calc":   write("calc", "#!/bin/sh\necho calc v1\n"),
		},
		Env: map[string]string{
			"CALCLAB_LISTEN":     "0.0.0.0:5000",
			"CALCLAB_DATA_DIR":   DataDir,
			"CALCLAB_ALLOW_CIDR": "192.168.56.0/24",
			"CALCLAB_TOKEN":      "s3cret",
			"CALCLAB_POLICY":     "least-conn",
		},
		Root:      root,
		UploadDir: upload,
		Commands:  cmds,
	}
	unit, _ := UnitFor("master")
	var seen int
	var steps []string
	progress := func(s string) { steps = append(steps, s) }
	deploy := func(name string) bool {
		t.Helper()
		steps = nil
		changed, err := Deploy(ctx(t), client, plan, progress)
		if err != nil {
			t.Fatalf("%s deploy: %v\nsshd log:\n%s", name, err, srv.Log())
		}
		return changed
	}
	rooted := func(p string) string { return filepath.Join(root, p) }
	envText, _ := EnvFile(plan.Env)

	// 1. First deploy: everything is new.
	if !deploy("first") {
		t.Error("first deploy reported no change")
	}
	got := logLines(t, log, &seen, fakeDir)
	want := []string{
		"useradd --system --user-group --no-create-home --home-dir /var/lib/calclab --shell /usr/sbin/nologin calclab",
		"install " + rooted(BinDir+"/calc"),
		"install " + rooted(BinDir+"/master"),
		"install " + rooted(EnvDir+"/master.env"),
		"install " + rooted(unit.Path()),
		"systemctl daemon-reload",
		"systemctl enable --now calclab-master.service",
	}
	if !slices.Equal(got, want) {
		t.Errorf("first deploy ran\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	assertFile(t, rooted(BinDir+"/master"), []byte("#!/bin/sh\necho master v1\n"), 0o755)
	assertFile(t, rooted(BinDir+"/calc"), []byte("#!/bin/sh\necho calc v1\n"), 0o755)
	assertFile(t, rooted(EnvDir+"/master.env"), envText, 0o600)
	assertFile(t, rooted(unit.Path()), []byte(unit.Text()), 0o644)
	if left, _ := os.ReadDir(upload); len(left) != 0 {
		t.Errorf("uploads left in %s: %v", upload, left)
	}
	if m, _ := filepath.Glob(filepath.Join(root, "*", "*", "*.calclab-new")); len(m) != 0 {
		t.Errorf("temporary files left: %v", m)
	}
	before := map[string]int64{}
	for _, p := range []string{BinDir + "/master", BinDir + "/calc", EnvDir + "/master.env", unit.Path()} {
		before[p] = mtime(t, rooted(p))
	}

	// 2. Nothing changed: nothing done.
	if deploy("second") {
		t.Error("second deploy with nothing changed reported a change")
	}
	if got := logLines(t, log, &seen, fakeDir); len(got) != 0 {
		t.Errorf("second deploy ran %q, want nothing", got)
	}
	for p, m := range before {
		if mtime(t, rooted(p)) != m {
			t.Errorf("second deploy rewrote %s", p)
		}
	}
	for _, s := range steps {
		if !strings.HasPrefix(s, "unchanged ") {
			t.Errorf("second deploy step %q", s)
		}
	}

	// 3. One binary changed: only it is uploaded, one restart.
	write("calc", "#!/bin/sh\necho calc v2\n")
	if !deploy("third") {
		t.Error("deploy of a changed binary reported no change")
	}
	got = logLines(t, log, &seen, fakeDir)
	want = []string{
		"install " + rooted(BinDir+"/calc"),
		"systemctl restart calclab-master.service",
	}
	if !slices.Equal(got, want) {
		t.Errorf("third deploy ran %q, want %q", got, want)
	}
	assertFile(t, rooted(BinDir+"/calc"), []byte("#!/bin/sh\necho calc v2\n"), 0o755)
	if mtime(t, rooted(BinDir+"/master")) != before[BinDir+"/master"] {
		t.Error("the unchanged master binary was rewritten")
	}
	if !slices.Contains(steps, "upload binary calc (23 B)") || !slices.Contains(steps, "unchanged binary master") {
		t.Errorf("progress: %q", steps)
	}

	// 4. The env changed: rewritten, restart, no daemon-reload.
	plan.Env["CALCLAB_POLICY"] = "p2c"
	if !deploy("fourth") {
		t.Error("deploy of a changed env reported no change")
	}
	got = logLines(t, log, &seen, fakeDir)
	want = []string{
		"install " + rooted(EnvDir+"/master.env"),
		"systemctl restart calclab-master.service",
	}
	if !slices.Equal(got, want) {
		t.Errorf("fourth deploy ran %q, want %q", got, want)
	}
	envText, _ = EnvFile(plan.Env)
	assertFile(t, rooted(EnvDir+"/master.env"), envText, 0o600)

	// 5. Still idempotent after the changes.
	if deploy("fifth") {
		t.Error("fifth deploy reported a change")
	}
	if got := logLines(t, log, &seen, fakeDir); len(got) != 0 {
		t.Errorf("fifth deploy ran %q", got)
	}

	// 6. Host keys: the same server is accepted again...
	c2, err := sshkeys.DialWith(ctx(t), srv.Addr, srv.User, signer, kh)
	if err != nil {
		t.Fatalf("second dial: %v", err)
	}
	c2.Close()
	// ...a "recreated VM" (new host key, same address) is refused...
	client.Close()
	srv.Stop()
	srv2 := sshdtest.Start(t, filepath.Join(tmp, "sshd"), authKey, mustPort(t, srv.Addr))
	_, err = sshkeys.DialWith(ctx(t), srv.Addr, srv.User, signer, kh)
	var changedKey *sshkeys.HostKeyChangedError
	if !errors.As(err, &changedKey) {
		t.Fatalf("dial to a server with a changed host key: err = %v, want a HostKeyChangedError", err)
	}
	if changedKey.Got != ssh.FingerprintSHA256(srv2.HostKey) {
		t.Errorf("error names %s, the new key is %s", changedKey.Got, ssh.FingerprintSHA256(srv2.HostKey))
	}
	// ...until forgotten.
	if err := kh.Forget(srv.Addr); err != nil {
		t.Fatal(err)
	}
	c3, err := sshkeys.DialWith(ctx(t), srv.Addr, srv.User, signer, kh)
	if err != nil {
		t.Fatalf("dial after Forget: %v", err)
	}
	c3.Close()
}

func mustPort(t *testing.T, addr string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}

// TestDeployRefusesLoginUserAsServiceUser: lab.yaml's default ssh_user is
// "calclab", the services' default user too; the services must not run as
// the user that has passwordless sudo.
func TestDeployRefusesLoginUserAsServiceUser(t *testing.T) {
	sshdtest.Require(t)
	tmp := t.TempDir()
	_, authKey, err := sshkeys.EnsureKeyPair(filepath.Join(tmp, ".lab"))
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, filepath.Join(tmp, "sshd"), authKey, 0)
	bin := filepath.Join(tmp, "slave")
	os.WriteFile(bin, []byte("x"), 0o755)
	n := sshkeys.Target{Node: "n", Addr: srv.Addr, User: srv.User, KeyDir: filepath.Join(tmp, ".lab"), KnownHosts: filepath.Join(tmp, ".lab", "known_hosts")}
	_, err = DeployNode(ctx(t), n, Plan{Role: "slave", Binaries: map[string]string{"slave": bin}, ServiceUser: srv.User, Root: tmp}, nil)
	if err == nil || !strings.Contains(err.Error(), "also the SSH login user") {
		t.Fatalf("error = %v", err)
	}
}
