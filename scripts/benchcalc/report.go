package main

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// row is one scenario of the report.
type row struct {
	key, num, title, unit, what string
	skipped                     string
	targetRate                  float64 // master-half: the open-loop rate
	st                          *runStats
}

type sysInfo struct {
	date, uname, cpuModel, goVersion, binGo, nginx, load string
	cores                                                int
}

type report struct {
	cfg         config
	info        sysInfo
	rows        []*row
	capacity    [2]int
	interrupted bool
	died        map[string]bool
	problems    []string // children that died
	logs        []string // what the services logged
}

const batchTarget = 300000

func newReport(cfg config) *report {
	r := &report{cfg: cfg, info: gatherInfo(cfg), died: map[string]bool{}}
	r.rows = []*row{
		{key: "direct", num: "(1)", title: "direct", unit: "tasks", what: "POST slave-1/compute, one slave, no master"},
		{key: "master", num: "(2)", title: "master", unit: "tasks", what: "POST master/submit-task (synchronous), 2 slaves"},
		{key: "master-half", num: "(2h)", title: "master @ half load", unit: "tasks", what: "(2) open loop at 50% of its throughput"},
		{key: "nginx", num: "(3)", title: "nginx", unit: "tasks", what: "POST nginx/compute, least_conn over the 2 slaves"},
		{key: "batch", num: "(4)", title: "batch", unit: "exprs", what: fmt.Sprintf("POST master/submit-batch, %s expressions each", commas(float64(cfg.batchSize)))},
	}
	return r
}

func (r *report) get(key string) *row {
	for _, s := range r.rows {
		if s.key == key {
			return s
		}
	}
	panic("no scenario " + key)
}

func (r *report) anyErrors() bool {
	for _, s := range r.rows {
		if s.st != nil && (s.st.bad > 0 || s.st.warmBad > 0) {
			return true
		}
	}
	return false
}

func gatherInfo(cfg config) sysInfo {
	in := sysInfo{date: time.Now().Format("2006-01-02 15:04:05 -0700 MST"), cores: runtime.NumCPU()}
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		in.uname = strings.TrimSpace(string(out))
	}
	in.cpuModel = cpuModel()
	in.goVersion = runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
	if out, err := exec.Command("go", "version").Output(); err == nil {
		in.goVersion = strings.TrimSpace(string(out))
	}
	if bi, err := buildinfo.ReadFile(filepath.Join(cfg.binDir, "master")); err == nil {
		in.binGo = bi.GoVersion
	}
	if _, err := os.Stat(cfg.nginxBin); err == nil {
		in.nginx = nginxVersion(cfg.nginxBin)
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(data)); len(f) >= 3 {
			in.load = fmt.Sprintf("%s %s %s (1, 5, 15 min) at start", f[0], f[1], f[2])
		}
	}
	return in
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name", "Hardware", "cpu model", "uarch":
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// commas formats v rounded to an integer with thousands separators.
func commas(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "?"
	}
	neg := v < 0
	s := strconv.FormatInt(int64(math.Round(math.Abs(v))), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}

// table is a header and rows of cells; right says which columns are numbers.
type table struct {
	head  []string
	right []bool
	rows  [][]string
}

func (t *table) text(w io.Writer, indent string) {
	width := make([]int, len(t.head))
	for _, r := range append([][]string{t.head}, t.rows...) {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(r []string) {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i > 0 {
				b.WriteString("   ")
			}
			if t.right[i] {
				b.WriteString(pad + c)
			} else if i < len(r)-1 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	line(t.head)
	var sep []string
	for i := range t.head {
		sep = append(sep, strings.Repeat("-", width[i]))
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
}

func (t *table) markdown(w io.Writer) {
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	var b strings.Builder
	b.WriteString("|")
	for _, h := range t.head {
		b.WriteString(" " + esc(h) + " |")
	}
	b.WriteString("\n|")
	for i := range t.head {
		if t.right[i] {
			b.WriteString("--:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString("|")
		for _, c := range r {
			b.WriteString(" " + esc(c) + " |")
		}
		b.WriteString("\n")
	}
	fmt.Fprint(w, b.String())
}

func (r *report) headerLines() [][2]string {
	in := r.info
	goLine := in.goVersion
	if in.binGo != "" {
		goLine += fmt.Sprintf(" (bin/master built with %s)", in.binGo)
	}
	nginx := in.nginx
	if nginx == "" {
		nginx = "not installed (apt-get install nginx-light)"
	}
	capacity := fmt.Sprintf("capacity %d and %d", r.capacity[0], r.capacity[1])
	if r.capacity[0] == r.capacity[1] {
		capacity = fmt.Sprintf("capacity %d each", r.capacity[0])
	}
	return [][2]string{
		{"date", in.date},
		{"host", in.uname},
		{"cpu", fmt.Sprintf("%s, %d cores (logical CPUs)", in.cpuModel, in.cores)},
		{"go", goLine},
		{"nginx", nginx},
		{"load", in.load},
		{"setup", fmt.Sprintf("1 master + 2 slaves (%s)%s, all on 127.0.0.1", capacity, r.nginxSetup())},
		{"flags", extraFlags(r.cfg)},
		{"run", fmt.Sprintf("each scenario %s warm-up + %s measured; scenarios 1-3 closed loop with %d keep-alive workers; batch %d workers",
			r.cfg.warmup, r.cfg.duration, r.cfg.concurrency, r.cfg.batchConc)},
	}
}

func (r *report) nginxSetup() string {
	s := r.get("nginx")
	switch {
	case s.st == nil && s.skipped == "":
		return "; nginx not started (not in --only)"
	case s.st == nil:
		return "; no nginx: " + s.skipped
	}
	return fmt.Sprintf(" + nginx (worker_processes %s, least_conn, keepalive 64)", nginxWorkerCount(r.cfg.nginxWorkers))
}

func (r *report) skipReason(s *row) string {
	if s.skipped != "" {
		return s.skipped
	}
	return "not run (--only)"
}

func extraFlags(cfg config) string {
	s := "services at their defaults (master --log-level warn, slaves --id slave-N --log-level warn)"
	if len(cfg.masterFlags) > 0 {
		s += "; master also " + strings.Join(cfg.masterFlags, " ")
	}
	if len(cfg.slaveFlags) > 0 {
		s += "; slaves also " + strings.Join(cfg.slaveFlags, " ")
	}
	return s
}

func (r *report) resultsTable() *table {
	t := &table{
		head:  []string{"scenario", "requests", "errors", "throughput", "p50", "p99", "notes"},
		right: []bool{false, true, true, true, true, true, false},
	}
	for _, s := range r.rows {
		name := s.num + " " + s.title
		if s.st == nil {
			t.rows = append(t.rows, []string{name, "-", "-", "-", "-", "-", "SKIPPED: " + r.skipReason(s)})
			continue
		}
		st := s.st
		count := commas(float64(st.requests))
		errs := commas(float64(st.bad))
		if st.bad > 0 {
			errs += " ERRORS"
		}
		notes := s.what
		switch s.key {
		case "batch":
			count = commas(float64(st.good+st.bad)) + " exprs"
			notes += fmt.Sprintf("; %s requests, latency per request", commas(float64(st.requests)))
		case "master-half":
			notes = fmt.Sprintf("(2) open loop: target %s/s, achieved %s/s; from scheduled send p50 %s, p99 %s",
				commas(s.targetRate), commas(st.achieved), fmtDur(pctOf(st.latSched, 50)), fmtDur(pctOf(st.latSched, 99)))
			if senderBehind(s) {
				notes += " (SENDER FELL BEHIND: the service could not keep up, or the machine starved the sender)"
			}
		}
		if st.warmBad > 0 {
			notes += fmt.Sprintf("; +%s ERRORS during warm-up", commas(float64(st.warmBad)))
		}
		p50, p99 := "-", "-"
		if len(st.lat) > 0 {
			p50, p99 = fmtDur(st.pct(50)), fmtDur(st.pct(99))
		}
		t.rows = append(t.rows, []string{name, count, errs, commas(st.rate()) + " " + s.unit + "/s", p50, p99, notes})
	}
	return t
}

// verdict of one target; ok false when a scenario is missing or had errors.
func (r *report) usable(keys ...string) (bool, string) {
	for _, k := range keys {
		s := r.get(k)
		switch {
		case s.st == nil:
			return false, fmt.Sprintf("n/a: %s %s %s", s.num, s.title, r.skipReason(s))
		case s.st.bad > 0 || s.st.warmBad > 0:
			return false, fmt.Sprintf("NOT VALID: %s had %s errors", s.num, commas(float64(s.st.bad+s.st.warmBad)))
		case s.st.good == 0:
			return false, fmt.Sprintf("n/a: %s completed nothing", s.num)
		}
	}
	return true, ""
}

// senderBehind says whether an open-loop run fell behind its schedule: it
// sent too few requests, or its median send was late by more than 5 ms
// (the pool was all busy, or the machine starved the pacer).
func senderBehind(s *row) bool {
	st := s.st
	return st.achieved < 0.95*s.targetRate || pctOf(st.latSched, 50)-st.pct(50) > 5*time.Millisecond
}

func pctDiff(got, want float64) string {
	return fmt.Sprintf("%.1f%%", math.Abs(got-want)/want*100)
}

func (r *report) targetsTable() *table {
	t := &table{
		head:  []string{"ratio", "value", "target", "verdict"},
		right: []bool{false, true, false, false},
	}
	rate := func(k string) float64 { return r.get(k).st.rate() }
	ratio := func(a, b string) string {
		if ok, _ := r.usable(a, b); !ok {
			return "-"
		}
		return fmt.Sprintf("%.2fx", rate(a)/rate(b))
	}

	// (2)/(1): no target, what the master hop costs.
	v := "(no target: what the master hop costs)"
	if ok, why := r.usable("master", "direct"); !ok {
		v = why
	}
	t.rows = append(t.rows, []string{"(2)/(1) master / direct tasks/s", ratio("master", "direct"), "-", v})

	// (2)/(3): (2) >= (3).
	if ok, why := r.usable("master", "nginx"); !ok {
		v = why
	} else if m, n := rate("master"), rate("nginx"); m >= n {
		v = fmt.Sprintf("MET (%s tasks/s above, +%s)", commas(m-n), pctDiff(m, n))
	} else {
		v = fmt.Sprintf("MISSED by %s tasks/s (-%s)", commas(n-m), pctDiff(m, n))
	}
	t.rows = append(t.rows, []string{"(2)/(3) master / nginx tasks/s", ratio("master", "nginx"), "(2) >= (3) tasks/s", v})

	// (4): >= 300,000 expressions/s.
	if ok, why := r.usable("batch"); !ok {
		v = why
	} else if b := rate("batch"); b >= batchTarget {
		v = fmt.Sprintf("MET (%s expressions/s, +%s)", commas(b), pctDiff(b, batchTarget))
	} else {
		v = fmt.Sprintf("MISSED by %s expressions/s (%s expressions/s, -%s)", commas(batchTarget-b), commas(b), pctDiff(b, batchTarget))
	}
	t.rows = append(t.rows, []string{"(4)/(2) batch exprs/s / master tasks/s", ratio("batch", "master"), "(4) >= 300,000 expressions/s", v})

	// (2h): p50 < 1 ms.
	val := "-"
	if ok, why := r.usable("master-half"); !ok {
		v = why
	} else {
		s := r.get("master-half")
		p50 := s.st.pct(50)
		val = fmtDur(p50)
		if p50 < time.Millisecond {
			v = fmt.Sprintf("MET (%s under)", fmtDur(time.Millisecond-p50))
		} else {
			v = fmt.Sprintf("MISSED by %s (%.1fx the target)", fmtDur(p50-time.Millisecond), float64(p50)/float64(time.Millisecond))
		}
		if senderBehind(s) {
			v += "; the sender fell behind"
		}
	}
	t.rows = append(t.rows, []string{"(2h) p50 of (2) at half load", val, "p50 of (2) at half load < 1 ms", v})
	return t
}

func (r *report) cpuTable() *table {
	head := append([]string{"scenario"}, cpuParts...)
	head = append(head, "total", "service CPU per item")
	t := &table{head: head, right: make([]bool, len(head))}
	for i := 1; i < len(head); i++ {
		t.right[i] = true
	}
	for _, s := range r.rows {
		if s.st == nil || s.st.cpu == nil {
			continue
		}
		cells := []string{s.num + " " + s.title}
		var total float64
		for _, p := range cpuParts {
			v, ok := s.st.cpu[p]
			if !ok {
				cells = append(cells, "-")
				continue
			}
			total += v
			cells = append(cells, fmt.Sprintf("%.2f", v))
		}
		cells = append(cells, fmt.Sprintf("%.2f", total))
		// CPU of the services (not benchcalc, not other) per verified
		// task or expression: far less noisy than throughput on a busy box.
		svc := 0.0
		for _, p := range []string{"master", "slave-1", "slave-2", "nginx"} {
			svc += s.st.cpu[p]
		}
		per := "-"
		if rate := s.st.rate(); rate > 0 {
			per = fmt.Sprintf("%.1f µs/%s", svc/rate*1e6, strings.TrimSuffix(s.unit, "s"))
		}
		t.rows = append(t.rows, append(cells, per))
	}
	return t
}

func (r *report) errorLines() []string {
	out := append([]string(nil), r.problems...)
	for _, s := range r.rows {
		if s.st == nil {
			continue
		}
		for _, e := range s.st.errs {
			out = append(out, fmt.Sprintf("%s %s: %s", s.num, s.title, e))
		}
	}
	return out
}

func (r *report) footer() []string {
	n := r.info.cores
	lines := []string{
		fmt.Sprintf("The load generator (benchcalc), the master, both slaves and nginx all run on this one machine and share its %d cores "+
			"(as does anything else running, the \"other\" CPU column): the rows compare setups with each other on loopback, "+
			"they are not the capacity of a real deployment.", n),
		"Latency: per request, from just before the HTTP call to the end of the reply body, successful requests only. " +
			"Throughput: verified results per second over the measured window. Every reply is checked (HTTP 200 and the right value); " +
			"every expression is distinct (\"<i> * (2 + 3) - 7 / 2\").",
		fmt.Sprintf("(2h) paces requests from a pool of %d goroutines; Go timers on Linux wake about once a millisecond, "+
			"so above ~1,000 requests/s they leave in small bursts.", r.cfg.openPool),
		"nginx: worker_processes " + nginxWorkerCount(r.cfg.nginxWorkers) + ", upstream least_conn with keepalive 64, " +
			"proxy_http_version 1.1, Connection \"\", access_log off, keepalive_requests 1000000.",
	}
	if r.interrupted {
		lines = append([]string{"INTERRUPTED: the run was stopped before every scenario finished."}, lines...)
	}
	return lines
}

func (r *report) printText(w io.Writer) {
	fmt.Fprintln(w, "calclab calculator benchmark (scripts/benchcalc)")
	for _, kv := range r.headerLines() {
		fmt.Fprintf(w, "%-6s %s\n", kv[0]+":", kv[1])
	}
	fmt.Fprintln(w)
	r.resultsTable().text(w, "")
	if errs := r.errorLines(); len(errs) > 0 {
		fmt.Fprintln(w, "\nERRORS (first distinct messages):")
		for _, e := range errs {
			fmt.Fprintln(w, "  "+e)
		}
	}
	fmt.Fprintln(w)
	r.targetsTable().text(w, "")
	if ct := r.cpuTable(); len(ct.rows) > 0 {
		fmt.Fprintf(w, "\nCPU used during each measured window, in cores (of %d):\n", r.info.cores)
		ct.text(w, "")
	}
	if len(r.logs) > 0 {
		fmt.Fprintln(w, "\nService logs (--log-level warn):")
		for _, l := range r.logs {
			fmt.Fprintln(w, "  "+l)
		}
	}
	fmt.Fprintln(w)
	for _, l := range r.footer() {
		fmt.Fprintln(w, wrap(l, 100))
	}
}

func (r *report) printMarkdown(w io.Writer) {
	fmt.Fprintln(w, "### calclab calculator benchmark")
	fmt.Fprintln(w)
	for _, kv := range r.headerLines() {
		fmt.Fprintf(w, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintln(w)
	r.resultsTable().markdown(w)
	if errs := r.errorLines(); len(errs) > 0 {
		fmt.Fprintln(w, "\n**Errors** (first distinct messages):")
		fmt.Fprintln(w)
		for _, e := range errs {
			fmt.Fprintln(w, "- `"+strings.ReplaceAll(e, "`", "'")+"`")
		}
	}
	fmt.Fprintln(w)
	r.targetsTable().markdown(w)
	if ct := r.cpuTable(); len(ct.rows) > 0 {
		fmt.Fprintf(w, "\nCPU used during each measured window, in cores (of %d):\n\n", r.info.cores)
		ct.markdown(w)
	}
	if len(r.logs) > 0 {
		fmt.Fprintln(w, "\nService logs (--log-level warn):")
		fmt.Fprintln(w)
		for _, l := range r.logs {
			fmt.Fprintln(w, "- `"+strings.ReplaceAll(strings.TrimSpace(l), "`", "'")+"`")
		}
	}
	fmt.Fprintln(w)
	for _, l := range r.footer() {
		fmt.Fprintln(w, l)
		fmt.Fprintln(w)
	}
}

// wrap breaks s into lines of at most n characters at spaces.
func wrap(s string, n int) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if col+1+len(word) > n {
				b.WriteByte('\n')
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}
