package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
)

// row is one scenario of the report.
type row struct {
	key, num, title, unit, what string
	skipped                     string
	targetRate                  float64 // master-half, master-50: the open-loop rate
	st                          *runStats
	wrk                         *wrkResult // the wrk rows: what wrk printed
	failed                      bool       // a wrk row: wrk failed (skipped says so)
	slices                      int        // measured in this many slices alternating with its pair (0, 1: one window)
}

// moreSlavesCol is the CPU table's column of the slaves only (5) has.
const moreSlavesCol = "more-slaves"

// cpuCols are the columns of the CPU table, in order: processes by name
// (benchcalc is this program, the load generator of the rows not run by
// wrk), moreSlavesCol, and "other", the rest of the machine.
var cpuCols = []string{"benchcalc", "wrk", "master", "slave-1", "slave-2", moreSlavesCol, "nginx", "other"}

// serviceCols are the columns of the services, which the CPU per item
// sums.
var serviceCols = []string{"master", "slave-1", "slave-2", moreSlavesCol, "nginx"}

type report struct {
	cfg         config
	info        benchkit.SysInfo
	nginx       string // nginx -v; empty when not installed
	wrk         string // wrk -v; empty when not installed
	rows        []*row
	capacity    [2]int
	masterProcs int // the master's GOMAXPROCS, from its metrics
	interrupted bool
	problems    []string // children that died
	logs        []string // what the services logged
}

// The targets of issue 11 (never weaken one: a missed target says by how
// much).
const (
	batchTarget     = 1000000 // /submit-batch expressions/s
	masterCPUTarget = 40.0    // master CPU per task at peak (2), µs
	growthTarget    = 1.1     // master CPU per task, (5) ÷ (2h)
	ratioTarget     = 1.0     // master ÷ nginx tasks/s, (2)/(3) and (2w)/(3w)
	halfP50Target   = time.Millisecond
)

func newReport(cfg config) *report {
	r := &report{cfg: cfg, info: benchkit.GatherSysInfo(cfg.binDir)}
	if _, err := os.Stat(cfg.nginxBin); err == nil {
		r.nginx = nginxVersion(cfg.nginxBin)
	}
	if bin, err := exec.LookPath(cfg.wrkBin); err == nil {
		r.wrk = wrkVersion(bin)
		if r.wrk == "" {
			r.wrk = bin
		}
	}
	r.rows = scenarioRows(cfg)
	return r
}

// scenarioRows are the report's rows, in run order, nothing run yet.
func scenarioRows(cfg config) []*row {
	return []*row{
		{key: "direct", num: "(1)", title: "direct", unit: "tasks", what: "POST slave-1/compute, one slave, no master"},
		{key: "master", num: "(2)", title: "master", unit: "tasks", what: "POST master/submit-task (synchronous), 2 slaves"},
		{key: "master-wrk", num: "(2w)", title: "master via wrk", unit: "tasks", what: fmt.Sprintf("(2) with wrk -t%d -c%d as the load generator", wrkThreads, cfg.concurrency)},
		{key: "master-half", num: "(2h)", title: "master @ half load", unit: "tasks", what: "(2) open loop at 50% of its throughput"},
		{key: "nginx", num: "(3)", title: "nginx", unit: "tasks", what: "POST nginx/compute, least_conn over the 2 slaves"},
		{key: "nginx-wrk", num: "(3w)", title: "nginx via wrk", unit: "tasks", what: fmt.Sprintf("(3) with wrk -t%d -c%d as the load generator", wrkThreads, cfg.concurrency)},
		{key: "batch", num: "(4)", title: "batch", unit: "exprs", what: fmt.Sprintf("POST master/submit-batch, %s expressions each", benchkit.Commas(float64(cfg.batchSize)))},
		{key: "master-50", num: "(5)", title: fmt.Sprintf("master @ half load, %d slaves", cfg.manySlaves), unit: "tasks",
			what: fmt.Sprintf("(2h) at the same rate with %d slaves", cfg.manySlaves)},
	}
}

func (r *report) get(key string) *row {
	for _, s := range r.rows {
		if s.key == key {
			return s
		}
	}
	panic("no scenario " + key)
}

// halfRate is the open-loop rate of (2h) and (5): --half-rate, else the
// rate (2h) ran at, else half of (2)'s throughput; why says why there is
// none.
func (r *report) halfRate() (rate float64, why string) {
	if r.cfg.halfRate > 0 {
		return r.cfg.halfRate, ""
	}
	if h := r.get("master-half"); h.st != nil && h.targetRate > 0 {
		return h.targetRate, ""
	}
	m := r.get("master")
	if m.st == nil || m.st.bad > 0 || m.st.rate() <= 0 {
		return 0, "needs an error-free master run"
	}
	return m.st.rate() / 2, ""
}

func (r *report) anyErrors() bool {
	for _, s := range r.rows {
		if s.st != nil && (s.st.bad > 0 || s.st.warmBad > 0) {
			return true
		}
	}
	return false
}

func (r *report) headerLines() [][2]string {
	nginx := r.nginx
	if nginx == "" {
		nginx = "not installed (apt-get install nginx-light)"
	}
	wrk := r.wrk
	if wrk == "" {
		wrk = "not installed (apt-get install wrk)"
	}
	return append(r.info.HeaderLines(), [][2]string{
		{"nginx", nginx},
		{"wrk", wrk},
		{"load", r.info.Load},
		{"setup", fmt.Sprintf("1 master + 2 slaves (%s)%s, all on 127.0.0.1; (5) adds slave-3 .. slave-%d (same flags), stopped after it",
			benchkit.CapacityPhrase(r.capacity), r.nginxSetup(), r.cfg.manySlaves)},
		{"flags", extraFlags(r.cfg) + r.procsPhrase()},
		{"run", fmt.Sprintf("each scenario %s warm-up + %s measured; (1), (2), (3) closed loop with %d keep-alive workers; (2w), (3w) wrk -t%d -c%d -d%s --latency; (2h), (5) open loop; batch %d workers%s",
			r.cfg.warmup, r.cfg.duration, r.cfg.concurrency, wrkThreads, r.cfg.concurrency, wrkSeconds(r.cfg.duration), r.cfg.batchConc, r.slicesPhrase())},
	}...)
}

func (r *report) nginxSetup() string {
	s := r.get("nginx")
	if s.st == nil {
		if w := r.get("nginx-wrk"); w.st != nil {
			s = w
		}
	}
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

// procsPhrase says which GOMAXPROCS the master ran with, as its metrics
// reported it.
func (r *report) procsPhrase() string {
	how := "Go's default, one per CPU"
	if r.cfg.masterProcs > 0 {
		how = "--master-procs"
	}
	return fmt.Sprintf("; master GOMAXPROCS %d (%s)", r.masterProcs, how)
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

func (r *report) resultsTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"scenario", "requests", "errors", "throughput", "p50", "p99", "notes"},
		Right: []bool{false, true, true, true, true, true, false},
	}
	for _, s := range r.rows {
		name := s.num + " " + s.title
		if s.st == nil {
			t.Rows = append(t.Rows, []string{name, "-", "-", "-", "-", "-", "SKIPPED: " + r.skipReason(s)})
			continue
		}
		st := s.st
		count := benchkit.Commas(float64(st.requests))
		errs := benchkit.Commas(float64(st.bad))
		if st.bad > 0 {
			errs += " ERRORS"
		}
		notes := s.what
		switch s.key {
		case "batch":
			count = benchkit.Commas(float64(st.good+st.bad)) + " exprs"
			notes += fmt.Sprintf("; %s requests, latency per request", benchkit.Commas(float64(st.requests)))
		case "master-half", "master-50":
			lead := "(2) open loop"
			if s.key == "master-50" {
				lead = fmt.Sprintf("(2h)'s rate, %d slaves", r.cfg.manySlaves)
			}
			notes = fmt.Sprintf("%s: target %s/s, achieved %s/s; from scheduled send p50 %s, p99 %s", lead,
				benchkit.Commas(s.targetRate), benchkit.Commas(st.achieved), benchkit.FmtDur(pctOf(st.latSched, 50)), benchkit.FmtDur(pctOf(st.latSched, 99)))
			if senderBehind(s) {
				notes += " (SENDER FELL BEHIND: the service could not keep up, or the machine starved the sender)"
			}
		}
		if s.wrk != nil {
			notes += fmt.Sprintf("; wrk %s requests/s (any status), p90 %s", benchkit.Commas(s.wrk.reqPerSec), benchkit.FmtDur(st.pct(90)))
		}
		if s.slices > 1 {
			notes += fmt.Sprintf("; %d slices alternating with %s", s.slices, r.pairName(s))
			if s.wrk != nil {
				notes += " (percentiles: the median of the slices' own)"
			}
		}
		if st.warmBad > 0 {
			notes += fmt.Sprintf("; +%s ERRORS during warm-up", benchkit.Commas(float64(st.warmBad)))
		}
		p50, p99 := "-", "-"
		if st.hasLatency() {
			p50, p99 = benchkit.FmtDur(st.pct(50)), benchkit.FmtDur(st.pct(99))
		}
		t.Rows = append(t.Rows, []string{name, count, errs, benchkit.Commas(st.rate()) + " " + s.unit + "/s", p50, p99, notes})
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
			return false, fmt.Sprintf("NOT VALID: %s had %s errors", s.num, benchkit.Commas(float64(s.st.bad+s.st.warmBad)))
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

// atLeast is the verdict of a figure that must be at least target:
// "MET (+12.0%)" or "MISSED by 0.12x (-12.0%)"; unit formats a difference.
func atLeast(got, target float64, unit func(float64) string) string {
	if got >= target {
		return fmt.Sprintf("MET (%s above, +%s)", unit(got-target), pctDiff(got, target))
	}
	return fmt.Sprintf("MISSED by %s (-%s)", unit(target-got), pctDiff(got, target))
}

// atMost is the verdict of a figure that must be at most target.
func atMost(got, target float64, unit func(float64) string) string {
	if got <= target {
		return fmt.Sprintf("MET (%s under, -%s)", unit(target-got), pctDiff(got, target))
	}
	return fmt.Sprintf("MISSED by %s (+%s, %.2fx the target)", unit(got-target), pctDiff(got, target), got/target)
}

func fmtX(v float64) string      { return fmt.Sprintf("%.2fx", v) }
func fmtMicros(v float64) string { return fmt.Sprintf("%.1f µs", v) }
func fmtPerSec(unit string) func(float64) string {
	return func(v float64) string { return benchkit.Commas(v) + " " + unit + "/s" }
}

// masterPerItem is the master's CPU per verified task (or expression) of
// the scenario, in µs; false when it was not measured.
func (s *row) masterPerItem() (float64, bool) { return s.perItem("master") }

// perItem is part's CPU (a process: "master", "nginx") per verified task
// (or expression) of the scenario, in µs; false when it was not measured.
func (s *row) perItem(part string) (float64, bool) {
	if s.st == nil {
		return 0, false
	}
	c, ok := s.st.cores[part]
	rate := s.st.rate()
	if !ok || rate <= 0 {
		return 0, false
	}
	return c / rate * 1e6, true
}

// masterCPU is the master's CPU per item of each scenario, usable or why
// not.
func (r *report) masterCPU(keys ...string) ([]float64, string) {
	if ok, why := r.usable(keys...); !ok {
		return nil, why
	}
	var out []float64
	for _, k := range keys {
		v, ok := r.get(k).masterPerItem()
		if !ok {
			return nil, fmt.Sprintf("n/a: %s: the master's CPU was not measured", r.get(k).num)
		}
		out = append(out, v)
	}
	return out, ""
}

func (r *report) targetsTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"ratio", "value", "target", "verdict"},
		Right: []bool{false, true, false, false},
	}
	rate := func(k string) float64 { return r.get(k).st.rate() }
	ratio := func(a, b string) string {
		if ok, _ := r.usable(a, b); !ok {
			return "-"
		}
		return fmtX(rate(a) / rate(b))
	}
	add := func(name, val, target, verdict string) {
		t.Rows = append(t.Rows, []string{name, val, target, verdict})
	}

	// (2)/(1): no target, what the master hop costs.
	v := "(no target: what the master hop costs)"
	if ok, why := r.usable("master", "direct"); !ok {
		v = why
	}
	add("(2)/(1) master / direct tasks/s", ratio("master", "direct"), "-", v)

	// (2)/(3) and (2w)/(3w): the master serves at least nginx's tasks/s.
	for _, p := range [][3]string{{"master", "nginx", "tasks/s"}, {"master-wrk", "nginx-wrk", "tasks/s, wrk"}} {
		a, b := r.get(p[0]), r.get(p[1])
		if ok, why := r.usable(p[0], p[1]); !ok {
			v = why
		} else {
			v = atLeast(rate(p[0])/rate(p[1]), ratioTarget, fmtX) + fmt.Sprintf("; %s vs %s tasks/s", benchkit.Commas(rate(p[0])), benchkit.Commas(rate(p[1])))
		}
		add(fmt.Sprintf("%s/%s master / nginx %s", a.num, b.num, p[2]), ratio(p[0], p[1]), fmt.Sprintf("%s/%s >= %.1fx", a.num, b.num, ratioTarget), v)
	}

	// (2): the master's CPU per task at peak.
	val := "-"
	if cpu, why := r.masterCPU("master"); why != "" {
		v = why
	} else {
		val = fmtMicros(cpu[0])
		v = atMost(cpu[0], masterCPUTarget, fmtMicros)
	}
	add("(2) master CPU per task at peak", val, fmt.Sprintf("<= %.0f µs", masterCPUTarget), v)

	// (2) against (3): the master's CPU per task over nginx's own, both
	// measured in the same alternating slices, so that the machine's speed
	// (which moves the µs of both by up to 1.5x) mostly cancels out.
	val = "-"
	if ok, why := r.usable("master", "nginx"); !ok {
		v = why
	} else if cpu, why := r.masterCPU("master"); why != "" {
		v = why
	} else if ng, ok := r.get("nginx").perItem("nginx"); !ok || ng <= 0 {
		v = "n/a: (3) nginx's CPU was not measured"
	} else {
		val = fmtX(cpu[0] / ng)
		v = fmt.Sprintf("(no target: compares runs on a machine whose speed drifts); nginx's own CPU per task %s", fmtMicros(ng))
	}
	add("(2)÷(3) master CPU per task / nginx's", val, "-", v)

	// (2h): p50 < 1 ms.
	val = "-"
	if ok, why := r.usable("master-half"); !ok {
		v = why
	} else {
		s := r.get("master-half")
		p50 := s.st.pct(50)
		val = benchkit.FmtDur(p50)
		if p50 < halfP50Target {
			v = fmt.Sprintf("MET (%s under)", benchkit.FmtDur(halfP50Target-p50))
		} else {
			v = fmt.Sprintf("MISSED by %s (%.1fx the target)", benchkit.FmtDur(p50-halfP50Target), float64(p50)/float64(halfP50Target))
		}
		if senderBehind(s) {
			v += "; the sender fell behind"
		}
	}
	add("(2h) p50 of (2) at half load", val, "< "+benchkit.FmtDur(halfP50Target), v)

	// (5)/(2h): the master's CPU per task does not grow with the pool.
	val = "-"
	if cpu, why := r.masterCPU("master-50", "master-half"); why != "" {
		v = why
	} else {
		g := cpu[0] / cpu[1]
		val = fmtX(g)
		v = atMost(g, growthTarget, fmtX) + fmt.Sprintf("; %s vs %s per task", fmtMicros(cpu[0]), fmtMicros(cpu[1]))
		for _, k := range []string{"master-50", "master-half"} {
			if s := r.get(k); senderBehind(s) {
				v += "; " + s.num + "'s sender fell behind"
			}
		}
	}
	add(fmt.Sprintf("(5)/(2h) master CPU per task, %d ÷ 2 slaves", r.cfg.manySlaves), val, fmt.Sprintf("<= %.1fx (same rate)", growthTarget), v)

	// (4): /submit-batch expressions/s.
	val = "-"
	if ok, why := r.usable("batch"); !ok {
		v = why
	} else {
		b := rate("batch")
		val = benchkit.Commas(b) + " exprs/s"
		v = atLeast(b, batchTarget, fmtPerSec("exprs"))
	}
	add("(4) batch expressions/s", val, fmt.Sprintf(">= %s expressions/s", benchkit.Commas(batchTarget)), v)
	return t
}

// cpuHead is the heading of a CPU table column.
func (r *report) cpuHead(col string) string {
	if col == moreSlavesCol {
		return fmt.Sprintf("slave-3..%d", r.cfg.manySlaves)
	}
	return col
}

func (r *report) cpuTable() *benchkit.Table {
	var heads []string
	for _, c := range cpuCols {
		heads = append(heads, r.cpuHead(c))
	}
	t := benchkit.NewCPUTable("scenario", heads, "service CPU per item", "master CPU per item")
	for _, s := range r.rows {
		if s.st == nil || s.st.cores == nil {
			continue
		}
		cells := []string{s.num + " " + s.title}
		total := 0.0
		for _, c := range cpuCols {
			v, ok := s.st.cores[c]
			if !ok {
				cells = append(cells, "-")
				continue
			}
			total += v
			cells = append(cells, fmt.Sprintf("%.2f", v))
		}
		cells = append(cells, fmt.Sprintf("%.2f", total))
		// CPU of the services (not the load generator, not other) per
		// verified task or expression: far less noisy than throughput on
		// a busy box.
		svc := 0.0
		for _, c := range serviceCols {
			svc += s.st.cores[c]
		}
		item := strings.TrimSuffix(s.unit, "s")
		per, master := "-", "-"
		if rate := s.st.rate(); rate > 0 {
			per = fmt.Sprintf("%.1f µs/%s", svc/rate*1e6, item)
		}
		if v, ok := s.masterPerItem(); ok {
			master = fmt.Sprintf("%.1f µs/%s", v, item)
		}
		t.Rows = append(t.Rows, append(cells, per, master))
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
	n := r.info.Cores
	return []string{
		fmt.Sprintf("The load generator (benchcalc, or wrk in (2w) and (3w)), the master, the slaves and nginx all run on this one machine and share its %d cores "+
			"(as does anything else running, the \"other\" CPU column): the rows compare setups with each other on loopback, "+
			"they are not the capacity of a real deployment.", n),
		"Latency: per request, from just before the HTTP call to the end of the reply body, successful requests only. " +
			"Throughput: verified results per second over the measured window. Every reply is checked (HTTP 200 and the right value); " +
			"every expression is distinct (\"<i> * (2 + 3) - 7 / 2\"). " +
			"benchcalc sends one-task requests ((1), (2), (3), (2h), (5)) on its own minimal HTTP/1.1 client, one keep-alive connection per worker " +
			"read on the worker's goroutine (net/http's client cost it 3x wrk's CPU per request), and batches with net/http.",
		fmt.Sprintf("(2h) paces requests from a pool of %d goroutines; Go timers on Linux wake about once a millisecond, "+
			"so above ~1,000 requests/s they leave in small bursts.", r.cfg.openPool),
		"nginx: worker_processes " + nginxWorkerCount(r.cfg.nginxWorkers) + ", upstream least_conn with keepalive 64, " +
			"proxy_http_version 1.1, Connection \"\", access_log off, keepalive_requests 1000000.",
		fmt.Sprintf("(2w) and (3w): wrk with %d threads and the same %d keep-alive connections as (2) and (3), whole seconds (wrk -d), "+
			"after a warm-up run of its own; a Lua script gives every request a distinct expression. wrk checks only the HTTP status "+
			"(non-2xx replies and socket errors are its errors), not the value; its latencies are the percentiles it prints (--latency), "+
			"its CPU (from its rusage) is the wrk column.", wrkThreads, r.cfg.concurrency),
		fmt.Sprintf("(5) runs last: slave-3 .. slave-%d start with the same flags as slave-1 and slave-2, register with the same master, "+
			"and are stopped after it; it runs open loop at (2h)'s rate, so the master's CPU per task of the two rows compares "+
			"2 with %d slaves at the same load. CPU per item: of the services (master, slaves, nginx) and of the master alone, "+
			"per verified task or expression.", r.cfg.manySlaves, r.cfg.manySlaves),
	}
}

// print writes the report as text, or as Markdown for docs/benchmarks.md.
func (r *report) print(d benchkit.Doc) {
	d.Header("calclab calculator benchmark", "scripts/benchcalc", 6, r.headerLines())
	d.Blank()
	d.Table(r.resultsTable())
	d.Errors(r.errorLines())
	d.Blank()
	d.Table(r.targetsTable())
	d.CaptionedTable(fmt.Sprintf("CPU used during each measured window, in cores (of %d):", r.info.Cores), r.cpuTable())
	d.Logs(r.logs)
	d.Footer(r.interrupted, r.footer())
}

// pairName is the scenario s was measured in slices with.
func (r *report) pairName(s *row) string {
	for _, o := range r.rows {
		if o != s && r.pairOf(o) == s {
			return o.num
		}
	}
	if m := r.pairOf(s); m != nil {
		return m.num
	}
	return "its pair"
}

// slicesPhrase tells how the ratio pairs were measured.
func (r *report) slicesPhrase() string {
	if r.cfg.slices < 2 {
		return ""
	}
	return fmt.Sprintf("; (2) with (3) and (2w) with (3w) in %d alternating slices of %s each (wrk: whole seconds), one warm-up each",
		r.cfg.slices, r.cfg.duration/time.Duration(r.cfg.slices))
}
