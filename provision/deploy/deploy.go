// Package deploy installs calclab's binaries, environment and systemd unit
// on a node over SSH and SFTP, and (re)starts the service only when
// something changed.
//
// A deploy is idempotent: it compares the sha256 of every local file with
// the remote one and uploads only what differs (to the login user's home,
// then `sudo install` to a temporary name and an atomic rename), writes the
// unit and the env file only when their text differs, runs `systemctl
// daemon-reload` only when the unit changed, `systemctl enable --now` the
// first time and `systemctl restart` only when a binary, the env or the unit
// changed. Deploying the same thing twice changes and restarts nothing.
//
// On the node (the login user has passwordless sudo, as cloud-init sets up):
//
//	/opt/calclab/bin/<name>                  binaries, 0755
//	/etc/calclab/<role>.env                  CALCLAB_* settings, 0600 (holds the token)
//	/etc/systemd/system/calclab-<role>.service
//	/var/lib/calclab                         StateDirectory, the master's task store
//	user calclab                             system user the service runs as
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/provision/sshkeys"
)

// Plan is what to deploy to one node.
type Plan struct {
	// Role is spec.RoleMaster or spec.RoleSlave; it picks the unit.
	Role string
	// Binaries maps a name under /opt/calclab/bin to a local file. The
	// role's own binary (Binaries[Role]) is required.
	Binaries map[string]string
	// Env is written to /etc/calclab/<role>.env.
	Env map[string]string

	// ServiceUser is the system user the service runs as; default
	// "calclab". It must not be the SSH login user (that one can sudo).
	ServiceUser string
	// Root prefixes every path written on the node; default "/". Tests
	// point it at a temporary directory.
	Root string
	// UploadDir is where files are uploaded before `sudo install`;
	// default ~/.calclab-upload of the login user.
	UploadDir string
	// Commands are the remote programs run; the zero value means the real
	// ones. Tests replace them with fakes.
	Commands Commands
}

// Commands names the programs Deploy runs on the node (a command line
// each, split on spaces).
type Commands struct {
	Sudo      string // default "sudo -n"
	Systemctl string // default "systemctl"
	Useradd   string // default "useradd"
	ID        string // default "id"
}

func (c Commands) withDefaults() Commands {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	return Commands{
		Sudo:      def(c.Sudo, "sudo -n"),
		Systemctl: def(c.Systemctl, "systemctl"),
		Useradd:   def(c.Useradd, "useradd"),
		ID:        def(c.ID, "id"),
	}
}

var (
	binName  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// file is one file Deploy keeps in place on the node.
type file struct {
	kind   string // "binary", "env", "unit"
	name   string // for progress
	remote string // path on the node (without Root)
	mode   os.FileMode
	local  string // local file to upload, or
	data   []byte // the content
	sum    string // hex sha256 of the content
	size   int64
}

func (f *file) open() (io.ReadCloser, error) {
	if f.local != "" {
		return os.Open(f.local)
	}
	return io.NopCloser(bytes.NewReader(f.data)), nil
}

// Deploy brings the node behind client to plan p and reports whether it
// changed anything. progress (may be nil) gets one line per step.
func Deploy(ctx context.Context, client *ssh.Client, p Plan, progress func(string)) (changed bool, err error) {
	if progress == nil {
		progress = func(string) {}
	}
	unit, root, err := p.check(client.User())
	if err != nil {
		return false, err
	}
	cmds := p.Commands.withDefaults()

	// What should be on the node.
	var files []*file
	names := make([]string, 0, len(p.Binaries))
	for name := range p.Binaries {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		local := p.Binaries[name]
		sum, size, err := hashFile(local)
		if err != nil {
			return false, fmt.Errorf("deploy: binary %s: %w", name, err)
		}
		files = append(files, &file{kind: "binary", name: name, remote: BinDir + "/" + name, mode: 0o755, local: local, sum: sum, size: size})
	}
	envText, err := EnvFile(p.Env)
	if err != nil {
		return false, err
	}
	files = append(files,
		textFile("env", path.Base(unit.EnvironmentFile), unit.EnvironmentFile, 0o600, envText),
		textFile("unit", unit.Name, unit.Path(), 0o644, []byte(unit.Text())))

	r := &remote{ctx: ctx, client: client, cmds: cmds}

	// The service user.
	if _, err := r.run(cmds.ID + " -u " + quote(unit.User)); err != nil {
		var exit *ssh.ExitError
		if !errors.As(err, &exit) {
			return false, err
		}
		progress("create system user " + unit.User)
		if _, err := r.sudo(cmds.Useradd + " --system --user-group --no-create-home --home-dir " + DataDir +
			" --shell /usr/sbin/nologin " + quote(unit.User)); err != nil {
			return false, err
		}
		changed = true
	}

	// What is on the node.
	remoteSums, err := r.sums(root, files)
	if err != nil {
		return changed, err
	}
	var todo []*file
	for _, f := range files {
		if remoteSums[f.remote] == f.sum {
			progress("unchanged " + f.kind + " " + f.name)
			continue
		}
		todo = append(todo, f)
	}

	unitChanged, restart := false, false
	if len(todo) > 0 {
		if err := r.upload(root, p.UploadDir, todo, progress); err != nil {
			return changed, err
		}
		changed, restart = true, true
		for _, f := range todo {
			unitChanged = unitChanged || f.kind == "unit"
		}
	}

	systemctl := func(args string) error {
		progress("systemctl " + args)
		_, err := r.sudo(cmds.Systemctl + " " + args)
		return err
	}
	if unitChanged {
		if err := systemctl("daemon-reload"); err != nil {
			return changed, err
		}
	}
	// With sudo: without D-Bus (as on the lab's image) a non-root systemctl
	// cannot reach systemd and every unit would look disabled.
	if _, err := r.sudo(cmds.Systemctl + " is-enabled --quiet " + quote(unit.Name)); err != nil {
		var exit *ssh.ExitError
		if !errors.As(err, &exit) {
			return changed, err
		}
		_, hadUnit := remoteSums[unit.Path()]
		if !hadUnit || !restart {
			// First deploy: enable and start.
			if err := systemctl("enable --now " + quote(unit.Name)); err != nil {
				return changed, err
			}
			return true, nil
		}
		// Someone disabled it, and it may still run old files: enable,
		// then restart below.
		if err := systemctl("enable " + quote(unit.Name)); err != nil {
			return changed, err
		}
		changed = true
	}
	if restart {
		if err := systemctl("restart " + quote(unit.Name)); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// check validates the plan for a node logged into as loginUser and
// returns its unit and root.
func (p Plan) check(loginUser string) (Unit, string, error) {
	unit, err := UnitFor(p.Role)
	if err != nil {
		return Unit{}, "", err
	}
	if p.ServiceUser != "" {
		unit.User = p.ServiceUser
	}
	if !userName.MatchString(unit.User) {
		return Unit{}, "", fmt.Errorf("deploy: service user %q is not a valid user name", unit.User)
	}
	if unit.User == loginUser {
		return Unit{}, "", fmt.Errorf("deploy: the service user %q is also the SSH login user, which has passwordless sudo; "+
			"the services need a user of their own: use another ssh_user in lab.yaml, or set Plan.ServiceUser", unit.User)
	}
	if _, ok := p.Binaries[p.Role]; !ok {
		return Unit{}, "", fmt.Errorf("deploy: the plan has no %q binary (Binaries[%q]) for %s to run", p.Role, p.Role, unit.Name)
	}
	for name := range p.Binaries {
		if !binName.MatchString(name) {
			return Unit{}, "", fmt.Errorf("deploy: binary name %q: use letters, digits, '.', '_' and '-'", name)
		}
	}
	if _, err := EnvFile(p.Env); err != nil {
		return Unit{}, "", err
	}
	root := p.Root
	if root == "" {
		root = "/"
	}
	if !path.IsAbs(root) {
		return Unit{}, "", fmt.Errorf("deploy: root %q is not an absolute path", root)
	}
	if p.UploadDir != "" && !path.IsAbs(p.UploadDir) {
		return Unit{}, "", fmt.Errorf("deploy: upload dir %q is not an absolute path", p.UploadDir)
	}
	return unit, root, nil
}

func textFile(kind, name, remote string, mode os.FileMode, data []byte) *file {
	s := sha256.Sum256(data)
	return &file{kind: kind, name: name, remote: remote, mode: mode, data: data, sum: hex.EncodeToString(s[:]), size: int64(len(data))}
}

func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, err
	}
	if !fi.Mode().IsRegular() {
		return "", 0, fmt.Errorf("%s is not a regular file", name)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// remote runs commands on the node.
type remote struct {
	ctx    context.Context
	client *ssh.Client
	cmds   Commands
}

// run runs cmd in a session and returns its stdout; a failure carries
// stderr. A cancelled context ends the session.
func (r *remote) run(cmd string) ([]byte, error) {
	if err := r.ctx.Err(); err != nil {
		return nil, err
	}
	s, err := r.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("deploy: ssh session: %w", err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	stop := context.AfterFunc(r.ctx, func() { s.Signal(ssh.SIGKILL); s.Close() })
	defer stop()
	if err := s.Run(cmd); err != nil {
		if cerr := r.ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return stdout.Bytes(), &CommandError{Cmd: cmd, Stderr: strings.TrimSpace(stderr.String()), Err: err}
	}
	return stdout.Bytes(), nil
}

func (r *remote) sudo(cmd string) ([]byte, error) { return r.run(r.cmds.Sudo + " " + cmd) }

// CommandError is a remote command that failed.
type CommandError struct {
	Cmd    string
	Stderr string
	Err    error // *ssh.ExitError when it ran and failed
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("deploy: remote command %q: %v", e.Cmd, e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	if strings.Contains(e.Stderr, "a password is required") || strings.Contains(e.Stderr, "a terminal is required") {
		msg += " (the login user needs passwordless sudo)"
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// sums returns the sha256 of each file that exists on the node, by its
// path without root.
func (r *remote) sums(root string, files []*file) (map[string]string, error) {
	var args []string
	byPath := map[string]string{}
	for _, f := range files {
		p := path.Join(root, f.remote)
		byPath[p] = f.remote
		args = append(args, quote(p))
	}
	// Missing files are skipped, not errors; sudo because the env file is
	// root's alone.
	out, err := r.sudo(`sh -c 'for f; do if [ -f "$f" ]; then sha256sum -- "$f" || exit 1; fi; done' sh ` + strings.Join(args, " "))
	if err != nil {
		return nil, err
	}
	sums := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		sum, p, ok := strings.Cut(line, "  ")
		if !ok {
			continue
		}
		if rel, ok := byPath[p]; ok {
			sums[rel] = sum
		}
	}
	return sums, nil
}

// upload puts files in place: SFTP into the upload directory, then
// `sudo install` to <dst>.calclab-new, check the sha256 there, and rename
// over dst, so a service never sees a half-written file.
func (r *remote) upload(root, uploadDir string, files []*file, progress func(string)) error {
	sc, err := sftp.NewClient(r.client)
	if err != nil {
		return fmt.Errorf("deploy: sftp: %w", err)
	}
	defer sc.Close()
	if uploadDir == "" {
		home, err := sc.Getwd()
		if err != nil {
			return fmt.Errorf("deploy: sftp: home directory: %w", err)
		}
		uploadDir = path.Join(home, ".calclab-upload")
	}
	if err := sc.MkdirAll(uploadDir); err != nil {
		return fmt.Errorf("deploy: sftp: mkdir %s: %w", uploadDir, err)
	}
	if err := sc.Chmod(uploadDir, 0o700); err != nil {
		return fmt.Errorf("deploy: sftp: chmod %s: %w", uploadDir, err)
	}
	for _, f := range files {
		progress(fmt.Sprintf("upload %s %s (%s)", f.kind, f.name, humanSize(f.size)))
		tmp := path.Join(uploadDir, path.Base(f.remote)+"."+randomSuffix())
		if err := r.put(sc, f, tmp); err != nil {
			sc.Remove(tmp)
			return err
		}
		dst := path.Join(root, f.remote)
		next := dst + ".calclab-new"
		script := fmt.Sprintf(`install -D -m %04o "$1" "$2" && echo "$3  $2" | sha256sum --check --status && mv -f "$2" "$4"`, f.mode.Perm())
		_, err := r.sudo("sh -c " + quote(script) + " sh " + quote(tmp) + " " + quote(next) + " " + f.sum + " " + quote(dst))
		sc.Remove(tmp)
		if err != nil {
			return fmt.Errorf("deploy: install %s: %w", f.remote, err)
		}
	}
	return nil
}

func (r *remote) put(sc *sftp.Client, f *file, tmp string) error {
	src, err := f.open()
	if err != nil {
		return fmt.Errorf("deploy: %s: %w", f.name, err)
	}
	defer src.Close()
	dst, err := sc.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("deploy: sftp: create %s: %w", tmp, err)
	}
	// Private while it sits in the home directory (the env has the token).
	if err := dst.Chmod(0o600); err != nil {
		dst.Close()
		return fmt.Errorf("deploy: sftp: chmod %s: %w", tmp, err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-r.ctx.Done():
			dst.Close() // abort the copy
		case <-done:
		}
	}()
	if _, err := dst.ReadFrom(src); err != nil {
		dst.Close()
		if cerr := r.ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("deploy: sftp: upload %s: %w", f.name, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("deploy: sftp: upload %s: %w", f.name, err)
	}
	return nil
}

// quote quotes s for a POSIX shell.
func quote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:@=+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// DeployNode dials t (sshkeys.Target.Dial), deploys p (see Deploy) and
// hangs up.
func DeployNode(ctx context.Context, t sshkeys.Target, p Plan, progress func(string)) (changed bool, err error) {
	client, err := t.Dial(ctx)
	if err != nil {
		return false, err
	}
	defer client.Close()
	return Deploy(ctx, client, p, progress)
}
