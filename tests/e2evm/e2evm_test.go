// Package e2evm is the end-to-end test of the lab on QEMU VMs: it drives
// the real bin/lab (qemu provider) through bringing up a master and two
// slaves, checking them over SSH, running the Postman collection against
// the master, killing a slave's VM under load, bringing it back, reading
// the journals and tearing everything down.
//
// It boots VMs (minutes under TCG), so it only runs when CALCLAB_E2E_VM=1
// and never under -short; `make e2e-vm` builds the image and the binaries
// and runs it:
//
//	CALCLAB_E2E_VM=1 go test -count=1 -timeout 40m -v ./tests/e2evm/
//
// It needs root for nothing itself, but the image (scripts/build-image.sh)
// must be built, and 127.0.0.1 ports 5000, 6001, 6002 and 2220-2222 free.
// The phase times go to artifacts/e2e-vm-times.txt.
package e2evm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
)

const (
	masterURL = "http://127.0.0.1:5000"
	slave1URL = "http://127.0.0.1:6001"
	slave2URL = "http://127.0.0.1:6002"
)

// node is what the test expects of one node of lab.yaml.
type node struct {
	name, role, ip, unit, url string
	sshPort                   int
}

var nodes = []node{
	{name: "master", role: "master", ip: "192.168.56.10", unit: "calclab-master", url: masterURL, sshPort: 2220},
	{name: "slave-1", role: "slave", ip: "192.168.56.11", unit: "calclab-slave", url: slave1URL, sshPort: 2221},
	{name: "slave-2", role: "slave", ip: "192.168.56.12", unit: "calclab-slave", url: slave2URL, sshPort: 2222},
}

// webhooks are the slaves' webhooks as the master on the VMs knows them.
var webhooks = map[string]string{
	"slave-1": "http://192.168.56.11:6001",
	"slave-2": "http://192.168.56.12:6001",
}

type phase struct {
	name string
	d    time.Duration
	ok   bool
	note string
}

type e2e struct {
	t         *testing.T
	ctx       context.Context // ends before the go test deadline, or on SIGINT/SIGTERM
	root      string          // the repository
	lab       string          // bin/lab
	state     string          // the lab's --state-dir
	newmanBin string          // node_modules/.bin/newman (make deps), else newman on PATH
	start     time.Time

	imageTime     time.Duration // the image phase as make e2e-vm timed it
	imageFromMake bool
	accel         string // kvm or tcg, as the driver chose

	mu     sync.Mutex
	phases []phase
}

// re compiles a regular expression of the test.
func re(expr string) *regexp.Regexp { return regexp.MustCompile(expr) }

func TestLabOnQEMU(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU VMs: not under -short")
	}
	if os.Getenv("CALCLAB_E2E_VM") != "1" {
		t.Skip("boots QEMU VMs for minutes: set CALCLAB_E2E_VM=1 (make e2e-vm does)")
	}
	e := setup(t)

	e.phase("image (build or reuse)", e.image)
	e.phase("lab up: master + 2 slaves", e.up)
	invocations := map[string]string{}
	e.phase("ssh: addresses, ping, systemd", func() string { return e.sshChecks(invocations) })
	e.phase("master lists both slaves", e.slavesListed)
	e.phase("newman (Postman collection)", e.newman)
	var pid2 int
	e.phase("load + kill slave-2's VM", func() string { return e.failover(&pid2) })
	e.phase("lab up: slave-2 back", func() string { return e.upAgain(pid2, invocations) })
	e.phase("lab logs", e.logs)
	e.phase("lab down", e.down)
}

func setup(t *testing.T) *e2e {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	e := &e2e{t: t, root: root, lab: filepath.Join(root, "bin", "lab"), start: time.Now()}
	for _, f := range []string{"bin/lab", "bin/linux-amd64/master", "bin/linux-amd64/slave"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Fatalf("%s is missing: run make build (make e2e-vm does)", f)
		}
	}
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img", "ssh"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found in PATH (make e2e-vm installs it: scripts/vm-deps.sh)", bin)
		}
	}
	e.newmanBin = newmanPath(root)
	if e.newmanBin == "" {
		t.Fatal("newman not found: run make deps (npm ci of the pinned package.json into node_modules)")
	}
	if _, err := exec.LookPath("vde_switch"); err != nil {
		t.Logf("note: vde_switch not found: the internal network falls back to multicast sockets (apt-get install vde2)")
	}
	checkPortsFree(t)

	// Stop the commands in time for the cleanup (lab down) to run before
	// go test's own deadline, which would kill the test without cleanups;
	// an interrupt cancels them too.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	t.Cleanup(stop)
	if dl, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-3*time.Minute))
		t.Cleanup(cancel)
	}
	e.ctx = ctx
	// A directory of its own under the test's temp dir, so lab down can
	// remove it whole (it removes the state dir only once it is empty).
	e.state = filepath.Join(t.TempDir(), "lab")
	// Logs a failed run left behind would be taken for this run's.
	_ = os.RemoveAll(filepath.Join(root, "artifacts", "e2e-vm-logs"))
	t.Logf("repository %s, lab state in %s", root, e.state)

	t.Cleanup(e.cleanup)
	return e
}

// checkPortsFree fails when something holds a port the lab wants.
func checkPortsFree(t *testing.T) {
	t.Helper()
	var busy []string
	for _, p := range []int{5000, 6001, 6002, 2220, 2221, 2222} {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			busy = append(busy, addr+" (something answers)")
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			busy = append(busy, fmt.Sprintf("%s (%v)", addr, err))
			continue
		}
		ln.Close()
	}
	if len(busy) > 0 {
		holders := ""
		if out, err := exec.Command("ss", "-ltnp").CombinedOutput(); err == nil {
			holders = "\nss -ltnp:\n" + string(out)
		}
		t.Fatalf("the lab's ports are in use: %s.\nA lab left running? Stop it with `bin/lab down` (or `bin/lab --state-dir DIR down` for another state dir) and run again.%s",
			strings.Join(busy, ", "), holders)
	}
}

// phase runs one step of the test and records its wall time; a failure in
// it ends the test (the cleanup still runs lab down).
func (e *e2e) phase(name string, fn func() string) {
	e.t.Helper()
	fmt.Printf("\n=== e2e-vm phase: %s (%s into the test)\n", name, time.Since(e.start).Round(time.Second))
	start := time.Now()
	ok, note := false, ""
	defer func() {
		d := time.Since(start)
		if name == "image (build or reuse)" && e.imageFromMake {
			d = e.imageTime
		}
		e.mu.Lock()
		e.phases = append(e.phases, phase{name: name, d: d, ok: ok, note: note})
		e.mu.Unlock()
		status := "ok"
		if !ok {
			status = "FAILED"
		}
		fmt.Printf("=== e2e-vm phase: %s: %s in %s %s\n", name, status, d.Round(100*time.Millisecond), note)
	}()
	note = fn()
	ok = !e.t.Failed()
	if !ok {
		e.t.FailNow()
	}
}

// --- running bin/lab ---------------------------------------------------------

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}

// command runs a program from the repository root with a timeout and
// returns its stdout and stderr together; stream shows them as they come.
func (e *e2e) command(ctx context.Context, timeout time.Duration, stream bool, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = e.root
	// An interrupt lets bin/lab stop what it does; a kill follows.
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 20 * time.Second
	var out testcluster.LockedBuffer
	var pw *prefixWriter
	if stream {
		pw = &prefixWriter{w: os.Stdout, prefix: "    | "}
		cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, pw), io.MultiWriter(&out, pw)
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	err := cmd.Run()
	if pw != nil {
		pw.flush()
	}
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("%s did not finish within %s: %w", filepath.Base(name), timeout, err)
	} else if ctx.Err() != nil {
		err = fmt.Errorf("%s interrupted: %w", filepath.Base(name), ctx.Err())
	}
	return out.String(), err
}

// labArgs are bin/lab's arguments for this test's lab.
func (e *e2e) labArgs(args ...string) []string {
	return append([]string{"--file", filepath.Join(e.root, "lab.yaml"), "--state-dir", e.state}, args...)
}

// run runs bin/lab and fails the test when it fails.
func (e *e2e) run(timeout time.Duration, stream bool, args ...string) string {
	e.t.Helper()
	if stream {
		fmt.Printf("  $ bin/lab %s\n", strings.Join(args, " "))
	}
	out, err := e.command(e.ctx, timeout, stream, e.lab, e.labArgs(args...)...)
	if err != nil {
		if !stream {
			e.t.Logf("bin/lab %s:\n%s", strings.Join(args, " "), out)
		}
		e.t.Fatalf("bin/lab %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// ssh runs a shell command on a node through `lab ssh NODE -- CMD`.
func (e *e2e) ssh(node, script string) (string, error) {
	return e.command(e.ctx, 2*time.Minute, false, e.lab, e.labArgs("ssh", node, "--", script)...)
}

type nodeStatus struct {
	Node      string `json:"node"`
	Role      string `json:"role"`
	PID       int    `json:"pid"`
	Address   string `json:"address"`
	Health    string `json:"health"`
	InFlight  int    `json:"in_flight"`
	TasksDone uint64 `json:"tasks_done"`
}

func (e *e2e) status() map[string]nodeStatus {
	e.t.Helper()
	// lab status exits 1 when a node is not ok (as when a VM was killed)
	// and still prints every node.
	out, err := e.command(e.ctx, time.Minute, false, e.lab, e.labArgs("status", "--json")...)
	// (stdout and stderr are one stream here: the JSON ends at its last ']')
	if i := strings.LastIndex(out, "]"); i >= 0 {
		out = out[:i+1]
	}
	var rows []nodeStatus
	if jerr := json.Unmarshal([]byte(out), &rows); jerr != nil {
		e.t.Fatalf("lab status --json: %v (%v):\n%s", jerr, err, out)
	}
	m := map[string]nodeStatus{}
	for _, r := range rows {
		m[r.Node] = r
	}
	return m
}

// --- HTTP ----------------------------------------------------------------------

var client = &http.Client{Timeout: 90 * time.Second}

func getJSON(ctx context.Context, url string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return res.StatusCode, fmt.Errorf("GET %s answered %d: %w: %.200s", url, res.StatusCode, err, data)
	}
	return res.StatusCode, nil
}

func (e *e2e) slaves() ([]api.SlaveInfo, error) {
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	var list []api.SlaveInfo
	code, err := getJSON(ctx, masterURL+"/slaves", &list)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("GET /slaves answered %d", code)
	}
	return list, err
}

// --- phases ----------------------------------------------------------------------

// imageFromMake is the image phase as make e2e-vm measured it
// (CALCLAB_E2E_IMAGE_SECONDS).
func imageFromMake() (time.Duration, bool) {
	f, err := strconv.ParseFloat(os.Getenv("CALCLAB_E2E_IMAGE_SECONDS"), 64)
	if err != nil || f < 0 {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

// makeStart is when make e2e-vm started (CALCLAB_E2E_MAKE_START, Unix seconds).
func makeStart() (time.Time, bool) {
	f, err := strconv.ParseFloat(os.Getenv("CALCLAB_E2E_MAKE_START"), 64)
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

func (e *e2e) image() string {
	// The image must be built (make e2e-vm runs scripts/build-image.sh as
	// root before the test); --print-path says where it is, and whether it is.
	out, err := e.command(e.ctx, time.Minute, false, filepath.Join(e.root, "scripts", "build-image.sh"), "--print-path")
	if err != nil {
		e.t.Fatalf("the VM image is not built (%v): run `sudo scripts/build-image.sh` (make e2e-vm does):\n%s", err, out)
	}
	path := strings.TrimSpace(lastLine(out))
	if d, ok := imageFromMake(); ok {
		e.imageTime, e.imageFromMake = d, true
		return fmt.Sprintf("%s (scripts/build-image.sh, timed by make)", path)
	}
	return path + " (scripts/build-image.sh --print-path)"
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (e *e2e) up() string {
	out := e.run(20*time.Minute, true, "--provider", "qemu", "up")
	if !strings.Contains(out, "2 of 2 slaves registered") {
		e.t.Fatalf("lab up did not report both slaves registered")
	}
	st := e.status()
	for _, n := range nodes {
		s, ok := st[n.name]
		switch {
		case !ok:
			e.t.Errorf("lab status has no node %s", n.name)
		case s.PID <= 0 || s.Health != "ok":
			e.t.Errorf("lab status: %s: pid %d, health %q; want a running VM answering ok", n.name, s.PID, s.Health)
		case s.Address != n.url:
			e.t.Errorf("lab status: %s at %s, want %s (the port lab.yaml asks for)", n.name, s.Address, n.url)
		case !e.isOurQEMU(s.PID):
			e.t.Errorf("lab status: %s: pid %d is not a qemu-system-x86_64 of this lab", n.name, s.PID)
		}
	}
	var qs struct {
		Accel    string `json:"accel"`
		AccelWhy string `json:"accel_why"`
		Net      string `json:"net"`
	}
	if data, err := os.ReadFile(filepath.Join(e.state, "qemu-state.json")); err == nil && json.Unmarshal(data, &qs) == nil {
		e.accel = qs.Accel
	}
	data, err := os.ReadFile(filepath.Join(e.state, "provider"))
	if err != nil || strings.TrimSpace(string(data)) != "qemu" {
		e.t.Errorf("the provider is not remembered in %s/provider: %q, %v", e.state, data, err)
	}
	fmt.Printf("  accelerator %s (%s), internal network %s\n", qs.Accel, qs.AccelWhy, qs.Net)
	return fmt.Sprintf("(%s, network %s)", qs.Accel, qs.Net)
}

// isOurQEMU says whether pid runs QEMU with this lab's state dir in its
// arguments.
func (e *e2e) isOurQEMU(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(data), "\x00")
	return len(args) > 0 && filepath.Base(args[0]) == "qemu-system-x86_64" && strings.Contains(string(data), e.state)
}

func (e *e2e) sshChecks(invocations map[string]string) string {
	type res struct {
		out string
		err error
	}
	results := make([]res, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		var script strings.Builder
		fmt.Fprintf(&script, "set -e; echo \"== addr\"; ip -4 -br addr show dev eth1; echo \"== hostname $(hostname)\"; ")
		for _, o := range nodes {
			if o.name != n.name {
				fmt.Fprintf(&script, "ping -n -q -c 1 -W 5 %s >/dev/null && echo \"== ping %s ok\"; ", o.ip, o.ip)
			}
		}
		fmt.Fprintf(&script, "echo \"== active $(sudo -n systemctl is-active %s)\"; ", n.unit)
		fmt.Fprintf(&script, "echo \"== enabled $(sudo -n systemctl is-enabled %s)\"; ", n.unit)
		fmt.Fprintf(&script, "echo \"== invocation $(sudo -n systemctl show -P InvocationID %s)\"; ", n.unit)
		// The hardened unit, scored on the VM by its own systemd.
		fmt.Fprintf(&script, "echo \"== exposure $(sudo -n systemd-analyze security %s --no-pager | sed -n 's/.*exposure level for [^:]*: \\([0-9.]*\\).*/\\1/p')\"", n.unit)
		wg.Go(func() {
			out, err := e.ssh(n.name, script.String())
			results[i] = res{out, err}
		})
	}
	wg.Wait()
	for i, n := range nodes {
		out, err := results[i].out, results[i].err
		fmt.Printf("  %s:\n%s", n.name, indent(out, "    | "))
		if err != nil {
			e.t.Errorf("lab ssh %s: %v", n.name, err)
			continue
		}
		wantAddr := re(`(?m)^eth1\s+UP\s+` + strings.ReplaceAll(n.ip, ".", `\.`) + `/24\b`)
		if !wantAddr.MatchString(out) {
			e.t.Errorf("%s: eth1 does not hold %s/24 (ip -4 -br addr):\n%s", n.name, n.ip, out)
		}
		if !strings.Contains(out, "== hostname "+n.name+"\n") {
			e.t.Errorf("%s: hostname is not %s", n.name, n.name)
		}
		for _, o := range nodes {
			if o.name != n.name && !strings.Contains(out, "== ping "+o.ip+" ok") {
				e.t.Errorf("%s cannot ping %s (%s)", n.name, o.name, o.ip)
			}
		}
		if !strings.Contains(out, "== active active\n") {
			e.t.Errorf("%s: %s is not active", n.name, n.unit)
		}
		if !strings.Contains(out, "== enabled enabled\n") {
			e.t.Errorf("%s: %s is not enabled", n.name, n.unit)
		}
		if m := re(`== exposure ([0-9.]+)`).FindStringSubmatch(out); m == nil {
			e.t.Errorf("%s: systemd-analyze security %s printed no exposure level", n.name, n.unit)
		} else if x, _ := strconv.ParseFloat(m[1], 64); x > 2.0 {
			e.t.Errorf("%s: %s exposure %s, want <= 2.0 (systemd-analyze security)", n.name, n.unit, m[1])
		}
		if m := re(`== invocation ([0-9a-f]{32})`).FindStringSubmatch(out); m != nil {
			invocations[n.name] = m[1]
		} else {
			e.t.Errorf("%s: no InvocationID for %s", n.name, n.unit)
		}
	}
	return ""
}

func indent(s, prefix string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(prefix + l + "\n")
	}
	return b.String()
}

func (e *e2e) slavesListed() string {
	list, err := e.slaves()
	if err != nil {
		e.t.Fatalf("GET /slaves: %v", err)
	}
	got := map[string]api.SlaveInfo{}
	for _, s := range list {
		got[s.ID] = s
		fmt.Printf("  %-8s %-26s %-5s capacity %d version %s\n", s.ID, s.Webhook, s.Status, s.Capacity, s.Version)
	}
	if len(list) != 2 {
		e.t.Errorf("the master lists %d slaves, want 2: %+v", len(list), list)
	}
	for id, hook := range webhooks {
		s, ok := got[id]
		switch {
		case !ok:
			e.t.Errorf("the master does not list %s", id)
		case s.Webhook != hook:
			e.t.Errorf("%s registered with webhook %s, want its internal address %s", id, s.Webhook, hook)
		case s.Status != api.SlaveFree && s.Status != api.SlaveBusy:
			e.t.Errorf("%s is %s, want free or busy", id, s.Status)
		}
	}
	return ""
}

func (e *e2e) newman() string {
	if err := os.MkdirAll(filepath.Join(e.root, "artifacts"), 0o755); err != nil {
		e.t.Fatal(err)
	}
	junit := filepath.Join("artifacts", "e2e-vm-newman.xml")
	args := []string{"run", "postman/calclab.postman_collection.json",
		"-e", "postman/vm.postman_environment.json",
		"--color", "off", "--reporters", "cli,junit",
		"--reporter-cli-no-success-assertions",
		"--reporter-junit-export", junit}
	fmt.Printf("  $ newman %s\n", strings.Join(args, " "))
	// The lab's token (lab.yaml's or the one lab up generated) goes to the
	// collection, which sends it on every request.
	if tok, err := os.ReadFile(filepath.Join(e.state, "token")); err == nil && len(bytes.TrimSpace(tok)) > 0 {
		args = append(args, "--env-var", "token="+string(bytes.TrimSpace(tok)))
	}
	out, err := e.command(e.ctx, 10*time.Minute, true, e.newmanBin, args...)
	if err != nil {
		e.t.Fatalf("newman against the VM lab failed: %v", err)
	}
	m := re(`assertions\s*│\s*(\d+)\s*│\s*(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return "(junit: " + junit + ")"
	}
	return fmt.Sprintf("(%s assertions, %s failed)", m[1], m[2])
}

// task is one submission of the load.
type task struct {
	id, expr string
	want     float64
	code     int
	got      api.Task
	err      error
}

func (e *e2e) failover(pid2 *int) string {
	st := e.status()
	*pid2 = st["slave-2"].PID
	if *pid2 <= 0 || !e.isOurQEMU(*pid2) {
		e.t.Fatalf("slave-2's QEMU pid %d (lab status --json) is not a qemu of this lab", *pid2)
	}
	// Cross-check with the driver's state file.
	var qs struct {
		Nodes map[string]struct {
			PID int `json:"pid"`
		} `json:"nodes"`
	}
	if data, err := os.ReadFile(filepath.Join(e.state, "qemu-state.json")); err == nil && json.Unmarshal(data, &qs) == nil {
		if p := qs.Nodes["slave-2"].PID; p != *pid2 {
			e.t.Errorf("lab status says slave-2's pid is %d, qemu-state.json %d", *pid2, p)
		}
	}

	const total, workers, killAfter = 300, 8, 60
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	tasks := make([]*task, total)
	for i := range tasks {
		a, b, c, d := 1000+7*i, 3+i%17, 2+i%5, 4*i+1
		tasks[i] = &task{
			id:   fmt.Sprintf("e2e-vm-%s-%03d", run, i),
			expr: fmt.Sprintf("(%d + %d) * %d - %d / 4", a, b, c, d),
			want: float64((a+b)*c) - float64(d)/4,
		}
	}
	var finished atomic.Int32
	killed := make(chan struct{})
	var killedAt time.Time
	var killedAfter int32
	go func() {
		defer close(killed)
		for finished.Load() < killAfter {
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		killedAfter = finished.Load()
		killedAt = time.Now()
		if err := syscall.Kill(*pid2, syscall.SIGKILL); err != nil {
			e.t.Errorf("kill -9 %d (slave-2's QEMU): %v", *pid2, err)
		}
	}()

	start := time.Now()
	next := make(chan *task)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for tk := range next {
				tk.code, tk.err = submit(e.ctx, tk, &tk.got)
				finished.Add(1)
			}
		})
	}
	for _, tk := range tasks {
		next <- tk
	}
	close(next)
	wg.Wait()
	loadTime := time.Since(start)
	<-killed
	if killedAt.IsZero() {
		e.t.Fatalf("slave-2 was never killed")
	}
	if killedAfter >= total {
		e.t.Errorf("the load ended before the kill (%d of %d tasks done)", killedAfter, total)
	}

	// Every task the master accepted must be completed with the right
	// result; the stored task must say so too.
	accepted, rejected, wrong := 0, 0, 0
	bySlave := map[string]int{}
	retried := 0
	var slowest time.Duration
	for _, tk := range tasks {
		ctx, cancel := context.WithTimeout(e.ctx, 70*time.Second)
		var stored api.Task
		code, err := getJSON(ctx, masterURL+"/tasks/"+tk.id+"?wait=60s", &stored)
		cancel()
		if err != nil && code == 0 {
			e.t.Fatalf("GET /tasks/%s: %v", tk.id, err)
		}
		if code == http.StatusNotFound {
			rejected++
			e.t.Logf("task %s was not accepted: submission answered %d, %v", tk.id, tk.code, tk.err)
			continue
		}
		accepted++
		bad := ""
		switch {
		case tk.err != nil:
			bad = fmt.Sprintf("the submission failed (%v) although the task was stored", tk.err)
		case tk.code != http.StatusOK || tk.got.Status != api.StatusCompleted:
			bad = fmt.Sprintf("submission answered %d, status %q, error %q", tk.code, tk.got.Status, tk.got.Error)
		case tk.got.Result == nil || *tk.got.Result != tk.want:
			bad = fmt.Sprintf("result %v, want %v", ptr(tk.got.Result), tk.want)
		case stored.Status != api.StatusCompleted || stored.Result == nil || *stored.Result != tk.want:
			bad = fmt.Sprintf("stored task: status %q, result %v, want completed %v", stored.Status, ptr(stored.Result), tk.want)
		}
		if bad != "" {
			wrong++
			if wrong <= 10 {
				e.t.Errorf("task %s (%s): %s", tk.id, tk.expr, bad)
			}
			continue
		}
		bySlave[stored.Slave]++
		if stored.Attempts > 1 {
			retried++
		}
		slowest = max(slowest, time.Duration(stored.DurationMS*float64(time.Millisecond)))
	}
	if wrong > 10 {
		e.t.Errorf("... %d accepted tasks in all did not complete with the right result", wrong)
	}
	if accepted < total*9/10 {
		e.t.Errorf("only %d of %d tasks were accepted", accepted, total)
	}
	fmt.Printf("  %d tasks from %d clients in %s; slave-2's QEMU (pid %d) killed after %d tasks; accepted %d, rejected %d, wrong %d\n",
		total, workers, loadTime.Round(time.Millisecond), *pid2, killedAfter, accepted, rejected, wrong)
	fmt.Printf("  completed by slave: %v; retried on another slave: %d; slowest task %s\n", bySlave, retried, slowest.Round(time.Millisecond))
	if bySlave["slave-2"] == 0 {
		e.t.Logf("note: slave-2 completed none of the tasks before it was killed")
	}

	// The master marks slave-2 down.
	var downAfter time.Duration
	deadline := time.Now().Add(90 * time.Second)
	for {
		list, err := e.slaves()
		status := fmt.Sprint(err)
		if err == nil {
			status = "not listed"
			for _, s := range list {
				if s.ID == "slave-2" {
					status = s.Status
				}
				if s.ID == "slave-1" && s.Status != api.SlaveFree && s.Status != api.SlaveBusy {
					e.t.Errorf("slave-1 is %s after slave-2 died", s.Status)
				}
			}
		}
		if status == api.SlaveDown {
			downAfter = time.Since(killedAt)
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the master does not mark slave-2 down %s after its VM was killed (status: %s)", time.Since(killedAt).Round(time.Second), status)
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Printf("  the master marked slave-2 down %s after the kill\n", downAfter.Round(100*time.Millisecond))
	if e.isOurQEMU(*pid2) {
		e.t.Errorf("slave-2's QEMU (pid %d) still runs after SIGKILL", *pid2)
	}
	if s := e.status()["slave-2"]; s.Health != "stopped" || s.PID != 0 {
		e.t.Errorf("lab status: slave-2 health %q pid %d, want stopped without a pid", s.Health, s.PID)
	}
	return fmt.Sprintf("(load %s, down after %s)", loadTime.Round(100*time.Millisecond), downAfter.Round(100*time.Millisecond))
}

func ptr(f *float64) string {
	if f == nil {
		return "none"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

// submit posts one task synchronously and decodes the task in the reply.
func submit(ctx context.Context, tk *task, out *api.Task) (int, error) {
	body, _ := json.Marshal(map[string]string{"task_id": tk.id, "payload": tk.expr})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, masterURL+"/submit-task", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if err := json.Unmarshal(data, out); err != nil {
		return res.StatusCode, fmt.Errorf("reply %d: %w: %.200s", res.StatusCode, err, data)
	}
	return res.StatusCode, nil
}

func (e *e2e) upAgain(pid2 int, invocations map[string]string) string {
	before := e.status()
	out := e.run(20*time.Minute, true, "up")
	for _, n := range []string{"master", "slave-1"} {
		if !re(`(?m)^\s*` + n + `\s+boot\s+ok .*already running`).MatchString(out) {
			e.t.Errorf("lab up did not leave %s running as it was", n)
		}
		// The redeploy of an untouched node changes nothing and says so;
		// the InvocationID check below shows the service did not restart.
		if !re(`(?m)^\s*` + n + `\s+deploy\s+ok .*unchanged`).MatchString(out) {
			e.t.Errorf("lab up reported a change deploying the untouched %s", n)
		}
	}
	after := e.status()
	for _, n := range []string{"master", "slave-1"} {
		if after[n].PID != before[n].PID {
			e.t.Errorf("%s's QEMU changed from pid %d to %d", n, before[n].PID, after[n].PID)
		}
	}
	s2 := after["slave-2"]
	if s2.PID <= 0 || s2.PID == pid2 || !e.isOurQEMU(s2.PID) || s2.Health != "ok" {
		e.t.Errorf("slave-2 after lab up: pid %d (killed: %d), health %q", s2.PID, pid2, s2.Health)
	}
	if s2.Address != slave2URL {
		e.t.Errorf("slave-2 came back at %s, want %s", s2.Address, slave2URL)
	}
	// The services of the nodes left alone did not restart.
	for _, n := range nodes[:2] {
		out, err := e.ssh(n.name, "sudo -n systemctl show -P InvocationID "+n.unit)
		if err != nil {
			e.t.Errorf("lab ssh %s: %v: %s", n.name, err, out)
			continue
		}
		if got := strings.TrimSpace(out); got != invocations[n.name] {
			e.t.Errorf("%s restarted during lab up (InvocationID %s, was %s)", n.unit, got, invocations[n.name])
		}
	}
	out2, err := e.ssh("slave-2", "sudo -n systemctl is-active calclab-slave")
	if err != nil || strings.TrimSpace(out2) != "active" {
		e.t.Errorf("slave-2: calclab-slave is not active after lab up: %q %v", out2, err)
	}
	// slave-2 registered again: free in /slaves.
	list, err := e.slaves()
	if err != nil {
		e.t.Fatalf("GET /slaves: %v", err)
	}
	var found bool
	for _, s := range list {
		if s.ID == "slave-2" {
			found = true
			if s.Status != api.SlaveFree && s.Status != api.SlaveBusy {
				e.t.Errorf("slave-2 is %s after lab up, want free", s.Status)
			}
			if s.Webhook != webhooks["slave-2"] {
				e.t.Errorf("slave-2 registered again with %s, want %s", s.Webhook, webhooks["slave-2"])
			}
		}
	}
	if !found || len(list) != 2 {
		e.t.Errorf("the master lists %+v after lab up, want slave-1 and slave-2", list)
	}
	// And the pool computes again, on both slaves.
	counts := e.spread(40)
	if counts["slave-2"] == 0 {
		// What the master says of slave-2 tells why (its last failure).
		list, _ := e.slaves()
		e.t.Errorf("slave-2 took no task after it came back: %v; the master lists %+v", counts, list)
	}
	return fmt.Sprintf("(40 tasks after: %v)", counts)
}

// spread submits n tasks from 8 clients and returns how many each slave ran.
func (e *e2e) spread(n int) map[string]int {
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var mu sync.Mutex
	counts := map[string]int{}
	next := make(chan int)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := range next {
				tk := &task{id: fmt.Sprintf("e2e-vm-after-%s-%02d", run, i), expr: fmt.Sprintf("%d * %d", i+11, i+13), want: float64((i + 11) * (i + 13))}
				var got api.Task
				code, err := submit(e.ctx, tk, &got)
				mu.Lock()
				if err != nil || code != http.StatusOK || got.Result == nil || *got.Result != tk.want {
					e.t.Errorf("task %s after slave-2 came back: %d %v %+v", tk.expr, code, err, got)
				} else {
					counts[got.Slave]++
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return counts
}

func (e *e2e) logs() string {
	out := e.run(2*time.Minute, false, "logs", "slave-1")
	if !strings.Contains(out, "registered with the master") {
		e.t.Errorf("lab logs slave-1 does not show the slave registering:\n%s", tailLines(out, 30))
	}
	fmt.Printf("  lab logs slave-1: %d lines, last:\n%s", strings.Count(out, "\n"), indent(tailLines(out, 5), "    | "))
	master := e.run(2*time.Minute, false, "logs", "master")
	if !strings.Contains(master, "slave registered") {
		e.t.Errorf("lab logs master does not show slaves registering:\n%s", tailLines(master, 30))
	}
	console := e.run(time.Minute, false, "logs", "slave-1", "--console")
	if !strings.Contains(console, "Linux version") {
		e.t.Errorf("lab logs slave-1 --console does not show the kernel booting:\n%s", tailLines(console, 30))
	}
	return ""
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (e *e2e) down() string {
	e.run(2*time.Minute, true, "down")
	if procs := e.labProcesses(); len(procs) > 0 {
		e.t.Errorf("processes of the lab still run after lab down:\n%s", strings.Join(procs, "\n"))
	}
	// (QEMU renames its processes qemu-<lab>-<node>: match the command line.)
	if out, err := exec.Command("pgrep", "-a", "-f", "^qemu-system").Output(); err == nil && len(out) > 0 {
		e.t.Logf("note: other QEMU processes run on this machine (not this lab's):\n%s", out)
	}
	entries, err := os.ReadDir(e.state)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "(state dir removed)"
	case err != nil:
		e.t.Errorf("state dir: %v", err)
	case len(entries) > 0:
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		e.t.Errorf("lab down left files in %s: %v", e.state, names)
	}
	return ""
}

// labProcesses lists the processes (QEMU, vde_switch) with this lab's
// state dir in their command line, as pgrep -f sees them.
func (e *e2e) labProcesses() []string {
	out, err := exec.Command("pgrep", "-a", "-f", e.state).Output()
	if err != nil {
		return nil // pgrep: exit status 1 when nothing matches
	}
	var procs []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" && !strings.Contains(l, "pgrep") {
			procs = append(procs, l)
		}
	}
	return procs
}

// --- cleanup --------------------------------------------------------------------------

// cleanup shows what the nodes say when the test failed, always brings the
// lab down, and writes the phase table.
func (e *e2e) cleanup() {
	ctx := context.Background()
	lab := func(timeout time.Duration, args ...string) string {
		out, err := e.command(ctx, timeout, false, e.lab, e.labArgs(args...)...)
		if err != nil {
			out += fmt.Sprintf("\n(bin/lab %s: %v)", strings.Join(args, " "), err)
		}
		return out
	}
	_, statErr := os.Stat(e.state)
	running := statErr == nil
	if e.t.Failed() && running {
		fmt.Printf("\n=== e2e-vm failed: lab status\n%s\n", lab(time.Minute, "status"))
		for _, n := range nodes {
			fmt.Printf("\n=== last 50 lines of %s's journal (lab logs %s)\n%s\n", n.name, n.name, tailLines(lab(time.Minute, "logs", n.name), 50))
			fmt.Printf("\n=== last 50 lines of %s's console (lab logs %s --console)\n%s\n", n.name, n.name, tailLines(lab(time.Minute, "logs", n.name, "--console"), 50))
		}
		e.saveLogs()
	}
	if running {
		start := time.Now()
		fmt.Printf("\n=== e2e-vm cleanup: lab down\n")
		out, err := e.command(ctx, 3*time.Minute, true, e.lab, e.labArgs("--provider", "qemu", "down")...)
		if err != nil {
			e.t.Errorf("lab down (cleanup): %v\n%s", err, out)
		}
		if procs := e.labProcesses(); len(procs) > 0 {
			e.t.Errorf("processes of the lab still run after lab down (cleanup):\n%s", strings.Join(procs, "\n"))
		}
		e.mu.Lock()
		e.phases = append(e.phases, phase{name: "lab down (cleanup)", d: time.Since(start), ok: err == nil})
		e.mu.Unlock()
	}
	e.writeTimes()
}

// saveLogs copies the nodes' console and QEMU logs to artifacts/e2e-vm-logs.
func (e *e2e) saveLogs() {
	dst := filepath.Join(e.root, "artifacts", "e2e-vm-logs")
	for _, n := range nodes {
		for _, f := range []string{"console.log", "qemu.log"} {
			data, err := os.ReadFile(filepath.Join(e.state, n.name, f))
			if err != nil {
				continue
			}
			if err := os.MkdirAll(dst, 0o755); err == nil {
				_ = os.WriteFile(filepath.Join(dst, n.name+"-"+f), data, 0o644)
			}
		}
	}
	fmt.Printf("\n(console and QEMU logs copied to %s)\n", dst)
}

func (e *e2e) writeTimes() {
	e.mu.Lock()
	phases := slices.Clone(e.phases)
	e.mu.Unlock()
	var b bytes.Buffer
	result := "PASS"
	if e.t.Failed() {
		result = "FAIL"
	}
	// Under make e2e-vm, the total is the target's: from the image build
	// on, the binaries and the test's compilation included.
	total := time.Since(e.start)
	if start, ok := makeStart(); ok && e.imageFromMake {
		total = time.Since(start)
		build := e.start.Sub(start) - e.imageTime
		phases = slices.Insert(phases, min(1, len(phases)), phase{name: "make build + test compile", d: build, ok: true})
	}
	fmt.Fprintf(&b, "calclab e2e-vm (%s provider %s, %s), %s\n\n", "qemu", accel(e), time.Now().UTC().Format(time.RFC3339), result)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tWALL TIME\tRESULT\t")
	for _, p := range phases {
		r := "ok"
		if !p.ok {
			r = "FAILED"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.name, fmtDur(p.d), r, p.note)
	}
	fmt.Fprintf(tw, "total\t%s\t%s\t\n", fmtDur(total), result)
	tw.Flush()
	fmt.Printf("\n%s\n", b.String())
	dir := filepath.Join(e.root, "artifacts")
	if err := os.MkdirAll(dir, 0o755); err == nil {
		path := filepath.Join(dir, "e2e-vm-times.txt")
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			e.t.Logf("write %s: %v", path, err)
		} else {
			fmt.Printf("(written to %s)\n", path)
		}
	}
}

// accel is the accelerator the lab used, as the driver recorded it.
func accel(e *e2e) string {
	if e.accel != "" {
		return e.accel
	}
	return "accelerator unknown"
}

func fmtDur(d time.Duration) string {
	if d >= time.Minute {
		m := int(d / time.Minute)
		s := math.Mod(d.Seconds(), 60)
		return fmt.Sprintf("%dm%04.1fs", m, s)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// newmanPath is the pinned newman that make deps installs, else one on
// PATH, else "".
func newmanPath(root string) string {
	if p := filepath.Join(root, "node_modules", ".bin", "newman"); fileExists(p) {
		return p
	}
	if p, err := exec.LookPath("newman"); err == nil {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
