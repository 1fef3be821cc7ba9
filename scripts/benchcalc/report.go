package main

import (
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
)

// row is one scenario of the report.
type row struct {
	key, num, title, unit, what string
	skipped                     string
	targetRate                  float64 // master-half: the open-loop rate
	st                          *runStats
}

// cpuParts are the columns of the CPU table, in order.
var cpuParts = []string{"benchcalc", "master", "slave-1", "slave-2", "nginx", "other"}

type report struct {
	cfg         config
	info        benchkit.SysInfo
	nginx       string // nginx -v; empty when not installed
	rows        []*row
	capacity    [2]int
	interrupted bool
	problems    []string // children that died
	logs        []string // what the services logged
}

const batchTarget = 300000

func newReport(cfg config) *report {
	r := &report{cfg: cfg, info: benchkit.GatherSysInfo(cfg.binDir)}
	if _, err := os.Stat(cfg.nginxBin); err == nil {
		r.nginx = nginxVersion(cfg.nginxBin)
	}
	r.rows = []*row{
		{key: "direct", num: "(1)", title: "direct", unit: "tasks", what: "POST slave-1/compute, one slave, no master"},
		{key: "master", num: "(2)", title: "master", unit: "tasks", what: "POST master/submit-task (synchronous), 2 slaves"},
		{key: "master-half", num: "(2h)", title: "master @ half load", unit: "tasks", what: "(2) open loop at 50% of its throughput"},
		{key: "nginx", num: "(3)", title: "nginx", unit: "tasks", what: "POST nginx/compute, least_conn over the 2 slaves"},
		{key: "batch", num: "(4)", title: "batch", unit: "exprs", what: fmt.Sprintf("POST master/submit-batch, %s expressions each", benchkit.Commas(float64(cfg.batchSize)))},
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

func (r *report) headerLines() [][2]string {
	nginx := r.nginx
	if nginx == "" {
		nginx = "not installed (apt-get install nginx-light)"
	}
	return append(r.info.HeaderLines(), [][2]string{
		{"nginx", nginx},
		{"load", r.info.Load},
		{"setup", fmt.Sprintf("1 master + 2 slaves (%s)%s, all on 127.0.0.1", benchkit.CapacityPhrase(r.capacity), r.nginxSetup())},
		{"flags", extraFlags(r.cfg)},
		{"run", fmt.Sprintf("each scenario %s warm-up + %s measured; scenarios 1-3 closed loop with %d keep-alive workers; batch %d workers",
			r.cfg.warmup, r.cfg.duration, r.cfg.concurrency, r.cfg.batchConc)},
	}...)
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
		case "master-half":
			notes = fmt.Sprintf("(2) open loop: target %s/s, achieved %s/s; from scheduled send p50 %s, p99 %s",
				benchkit.Commas(s.targetRate), benchkit.Commas(st.achieved), benchkit.FmtDur(pctOf(st.latSched, 50)), benchkit.FmtDur(pctOf(st.latSched, 99)))
			if senderBehind(s) {
				notes += " (SENDER FELL BEHIND: the service could not keep up, or the machine starved the sender)"
			}
		}
		if st.warmBad > 0 {
			notes += fmt.Sprintf("; +%s ERRORS during warm-up", benchkit.Commas(float64(st.warmBad)))
		}
		p50, p99 := "-", "-"
		if len(st.lat) > 0 {
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
		return fmt.Sprintf("%.2fx", rate(a)/rate(b))
	}

	// (2)/(1): no target, what the master hop costs.
	v := "(no target: what the master hop costs)"
	if ok, why := r.usable("master", "direct"); !ok {
		v = why
	}
	t.Rows = append(t.Rows, []string{"(2)/(1) master / direct tasks/s", ratio("master", "direct"), "-", v})

	// (2)/(3): (2) >= (3).
	if ok, why := r.usable("master", "nginx"); !ok {
		v = why
	} else if m, n := rate("master"), rate("nginx"); m >= n {
		v = fmt.Sprintf("MET (%s tasks/s above, +%s)", benchkit.Commas(m-n), pctDiff(m, n))
	} else {
		v = fmt.Sprintf("MISSED by %s tasks/s (-%s)", benchkit.Commas(n-m), pctDiff(m, n))
	}
	t.Rows = append(t.Rows, []string{"(2)/(3) master / nginx tasks/s", ratio("master", "nginx"), "(2) >= (3) tasks/s", v})

	// (4): >= 300,000 expressions/s.
	if ok, why := r.usable("batch"); !ok {
		v = why
	} else if b := rate("batch"); b >= batchTarget {
		v = fmt.Sprintf("MET (%s expressions/s, +%s)", benchkit.Commas(b), pctDiff(b, batchTarget))
	} else {
		v = fmt.Sprintf("MISSED by %s expressions/s (%s expressions/s, -%s)", benchkit.Commas(batchTarget-b), benchkit.Commas(b), pctDiff(b, batchTarget))
	}
	t.Rows = append(t.Rows, []string{"(4)/(2) batch exprs/s / master tasks/s", ratio("batch", "master"), "(4) >= 300,000 expressions/s", v})

	// (2h): p50 < 1 ms.
	val := "-"
	if ok, why := r.usable("master-half"); !ok {
		v = why
	} else {
		s := r.get("master-half")
		p50 := s.st.pct(50)
		val = benchkit.FmtDur(p50)
		if p50 < time.Millisecond {
			v = fmt.Sprintf("MET (%s under)", benchkit.FmtDur(time.Millisecond-p50))
		} else {
			v = fmt.Sprintf("MISSED by %s (%.1fx the target)", benchkit.FmtDur(p50-time.Millisecond), float64(p50)/float64(time.Millisecond))
		}
		if senderBehind(s) {
			v += "; the sender fell behind"
		}
	}
	t.Rows = append(t.Rows, []string{"(2h) p50 of (2) at half load", val, "p50 of (2) at half load < 1 ms", v})
	return t
}

func (r *report) cpuTable() *benchkit.Table {
	t := benchkit.NewCPUTable("scenario", cpuParts, "service CPU per item")
	for _, s := range r.rows {
		if s.st == nil || !s.st.cpu.Measured() {
			continue
		}
		cells := append([]string{s.num + " " + s.title}, s.st.cpu.Row(cpuParts)...)
		// CPU of the services (not benchcalc, not other) per verified
		// task or expression: far less noisy than throughput on a busy box.
		svc := 0.0
		for _, p := range []string{"master", "slave-1", "slave-2", "nginx"} {
			v, _ := s.st.cpu.Cores(p)
			svc += v
		}
		per := "-"
		if rate := s.st.rate(); rate > 0 {
			per = fmt.Sprintf("%.1f µs/%s", svc/rate*1e6, strings.TrimSuffix(s.unit, "s"))
		}
		t.Rows = append(t.Rows, append(cells, per))
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
