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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calclab/calclab/services/mandel"
)

type sysInfo struct {
	date, uname, cpuModel, goVersion, binGo, load string
	cores                                         int
}

type report struct {
	cfg         config
	info        sysInfo
	capacity    [2]int
	masterFlags []string
	seed        *seedResult
	heavy       *heavyResult
	policies    []*policyResult
	interrupted bool
	died        map[string]bool
	problems    []string // children that died
	logs        []string // what the services logged
	profiles    []string // --profile-dir
}

func newReport(cfg config) *report {
	return &report{cfg: cfg, info: gatherInfo(cfg), died: map[string]bool{}}
}

// anyErrors says whether any request failed or any picture was not
// identical to the in-process render.
func (r *report) anyErrors() bool {
	if s := r.seed; s != nil && (s.bad > 0 || s.warmBad > 0 || s.errs.total > 0 || s.identical != "yes") {
		return true
	}
	if h := r.heavy; h != nil && (h.errs.total > 0 || h.identical != "yes") {
		return true
	}
	for _, p := range r.policies {
		if p.errs.total > 0 {
			return true
		}
		for _, run := range p.runs {
			if run.identical != "yes" {
				return true
			}
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
	return fmtMS(float64(d) / float64(time.Millisecond))
}

func fmtMS(ms float64) string {
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

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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

func frameDesc(f mandel.Frame) string {
	return fmt.Sprintf("%dx%d, max_iter %d, centre (%.10f, %.10f), scale %.6g (%.4g wide x %.4g high)",
		f.Width, f.Height, f.MaxIter, f.CX, f.CY, f.Scale, f.Scale*float64(f.Width), f.Scale*float64(f.Height))
}

func (r *report) headerLines() [][2]string {
	in := r.info
	goLine := in.goVersion
	if in.binGo != "" {
		goLine += fmt.Sprintf(" (bin/master built with %s)", in.binGo)
	}
	capacity := fmt.Sprintf("capacity %d and %d", r.capacity[0], r.capacity[1])
	if r.capacity[0] == r.capacity[1] {
		capacity = fmt.Sprintf("capacity %d each", r.capacity[0])
	}
	flags := "master --log-level warn " + strings.Join(r.masterFlags, " ") + "; slaves --id slave-N --log-level warn"
	if len(r.cfg.slaveFlags) > 0 {
		flags += " " + strings.Join(r.cfg.slaveFlags, " ")
	}
	tile := "the master's default tile size"
	if r.cfg.tile > 0 {
		tile = fmt.Sprintf("tile=%d", r.cfg.tile)
	}
	return [][2]string{
		{"date", in.date},
		{"host", in.uname},
		{"cpu", fmt.Sprintf("%s, %d cores (logical CPUs)", in.cpuModel, in.cores)},
		{"go", goLine},
		{"load", in.load},
		{"setup", fmt.Sprintf("1 master + 2 slaves (%s), all on 127.0.0.1; in-process renders use GOMAXPROCS %d", capacity, runtime.GOMAXPROCS(0))},
		{"flags", flags},
		{"frames", fmt.Sprintf("(1) the master's defaults = seed view 500x500, max_iter 30, real axis -1.5..1.5; (2)+(3) %s, %s", frameDesc(heavyFrame), tile)},
		{"run", fmt.Sprintf("(1) %s warm-up + %s of sequential requests; (2) 1 warm-up + %d measured renders per path, interleaved; (3) %d streams per policy, alternating",
			r.cfg.warmup, r.cfg.duration, r.cfg.heavyRuns, r.cfg.heavyRuns)},
	}
}

func (r *report) seedTable() *table {
	t := &table{
		head:  []string{"(1) seed view", "requests", "errors", "median", "p90", "min", "max", "server median", "notes"},
		right: []bool{false, true, true, true, true, true, true, true, false},
	}
	s := r.seed
	name := "GET master/mandelbrot/render (defaults)"
	if s == nil {
		t.rows = append(t.rows, []string{name, "-", "-", "-", "-", "-", "-", "-", r.skipReason("seed")})
		return t
	}
	errs := commas(float64(s.bad))
	if s.bad > 0 {
		errs += " ERRORS"
	}
	cells := []string{name, commas(float64(s.requests)), errs, "-", "-", "-", "-", "-"}
	if len(s.lat) > 0 {
		cells[3], cells[4] = fmtDur(pct(s.lat, 50)), fmtDur(pct(s.lat, 90))
		cells[5], cells[6] = fmtDur(s.lat[0]), fmtDur(s.lat[len(s.lat)-1])
	}
	if len(s.serverMS) > 0 {
		cells[7] = fmtMS(pct(s.serverMS, 50))
	}
	notes := fmt.Sprintf("500x500 PNG verified on every reply, %s; %s tiles per frame", fmtBytes(s.pngBytes), orDash(s.tiles))
	if len(s.slaves) > 0 && s.requests > 0 {
		var parts []string
		for _, id := range slaveIDs(nil) {
			parts = append(parts, fmt.Sprintf("%s %d", id, s.slaves[id]))
		}
		notes += " (" + strings.Join(parts, ", ") + " in all)"
	}
	if s.window > 0 {
		notes += fmt.Sprintf("; %.0f frames/s", float64(s.requests)/s.window.Seconds())
	}
	if s.warmBad > 0 {
		notes += fmt.Sprintf("; +%d ERRORS during warm-up", s.warmBad)
	}
	t.rows = append(t.rows, append(cells, notes))
	if len(s.inTotal) > 0 {
		lat := slices.Clone(s.inTotal)
		slices.Sort(lat)
		t.rows = append(t.rows, []string{"in-process, all cores, render + PNG encode", commas(float64(len(lat))), "0",
			fmtDur(pct(lat, 50)), fmtDur(pct(lat, 90)), fmtDur(lat[0]), fmtDur(lat[len(lat)-1]), "-",
			fmt.Sprintf("reference, no target: mandel.RenderFrame(frame, %d) median %s + mandel.EncodePNG median %s, run after the measured window",
				runtime.GOMAXPROCS(0), fmtDur(median(s.inRender)), fmtDur(median(s.inEncode)))})
	}
	return t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (r *report) skipReason(key string) string {
	if !r.cfg.only[key] {
		return "SKIPPED: not run (--only)"
	}
	if r.interrupted {
		return "SKIPPED: interrupted"
	}
	return "SKIPPED: did not complete (see errors)"
}

func durStats(ds []time.Duration) (med, lo, hi string) {
	if len(ds) == 0 {
		return "-", "-", "-"
	}
	mn, mx := ds[0], ds[0]
	for _, d := range ds {
		mn, mx = min(mn, d), max(mx, d)
	}
	return fmtDur(median(ds)), fmtDur(mn), fmtDur(mx)
}

func (r *report) heavyTable() *table {
	t := &table{
		head:  []string{"(2) heavy frame", "runs", "median", "min", "max", "notes"},
		right: []bool{false, true, true, true, true, false},
	}
	h := r.heavy
	if h == nil {
		t.rows = append(t.rows, []string{"master, 2 slaves / in-process", "-", "-", "-", "-", r.skipReason("heavy")})
		return t
	}
	med, lo, hi := durStats(h.master)
	notes := fmt.Sprintf("GET master/mandelbrot/render, request to end of PNG; server X-Render-Ms median %s; %s tiles",
		fmtMS(medianF(h.serverMS)), orDash(h.tiles))
	if len(h.slaves) > 0 {
		notes += " (" + h.slaves[len(h.slaves)-1] + " in the last run)"
	}
	notes += fmt.Sprintf("; PNG %s; warm-up run %s", fmtBytes(h.pngBytes), fmtDur(h.warmMaster))
	t.rows = append(t.rows, []string{"master, 2 slaves", strconv.Itoa(len(h.master)), med, lo, hi, notes})
	med, lo, hi = durStats(h.inproc)
	notes = fmt.Sprintf("mandel.RenderFrame(frame, %d) median %s + mandel.EncodePNG median %s, no network; PNG %s; warm-up run %s",
		runtime.GOMAXPROCS(0), fmtDur(median(h.render)), fmtDur(median(h.encode)), fmtBytes(h.inprocBytes), fmtDur(h.warmInproc))
	t.rows = append(t.rows, []string{"in-process, all cores, render + PNG encode", strconv.Itoa(len(h.inproc)), med, lo, hi, notes})
	return t
}

func (r *report) heavyLines() []string {
	h := r.heavy
	if h == nil {
		return nil
	}
	return []string{
		"identical: " + orDash(h.identical) + " (the master's warm-up PNG, decoded, compared pixel by pixel with the in-process render)",
		fmt.Sprintf("picture: %s distinct colours, %.2f%% black (inside the set) pixels: a boundary region, not one flat colour (--save-dir to look at it)",
			commas(float64(h.colours)), 100*h.black),
	}
}

func (r *report) policyTable() *table {
	t := &table{
		head:  []string{"(3) policy", "runs", "wall median", "server ms", "first tile", "slave-1 tiles", "slave-1 busy", "slave-2 tiles", "slave-2 busy", "imbalance", "identical"},
		right: []bool{false, true, true, true, true, true, true, true, true, true, false},
	}
	if len(r.policies) == 0 {
		for _, p := range policies {
			t.rows = append(t.rows, []string{p, "-", "-", "-", "-", "-", "-", "-", "-", "-", r.skipReason("policies")})
		}
		return t
	}
	ids := slaveIDs(nil)
	for _, p := range r.policies {
		m := p.medianRun()
		if m == nil {
			t.rows = append(t.rows, []string{p.policy, "0", "-", "-", "-", "-", "-", "-", "-", "-", "ERRORS (see below)"})
			continue
		}
		var walls []time.Duration
		lo, hi := math.Inf(1), 0.0
		ident := "yes"
		for _, run := range p.runs {
			walls = append(walls, run.wall)
			im := run.imbalance(ids)
			lo, hi = min(lo, im), max(hi, im)
			if run.identical != "yes" && ident == "yes" {
				ident = run.identical
			}
		}
		imb := fmt.Sprintf("%.2f", m.imbalance(ids))
		if len(p.runs) > 1 {
			imb += fmt.Sprintf(" (%.2f-%.2f)", lo, hi)
		}
		runs := strconv.Itoa(len(p.runs))
		if p.errs.total > 0 {
			runs += fmt.Sprintf(" +%d ERRORS", p.errs.total)
		}
		t.rows = append(t.rows, []string{
			p.policy, runs, fmtDur(median(walls)), fmtMS(m.serverMS), fmtDur(m.firstTile),
			strconv.Itoa(m.slaves[ids[0]].Tiles), fmtMS(m.slaves[ids[0]].BusyMS),
			strconv.Itoa(m.slaves[ids[1]].Tiles), fmtMS(m.slaves[ids[1]].BusyMS),
			imb, ident,
		})
	}
	return t
}

func (r *report) policyLines() []string {
	var out []string
	for _, p := range r.policies {
		m := p.medianRun()
		if m == nil {
			continue
		}
		line := fmt.Sprintf("%s (median run): %d tiles, tile ms p50 %s, p90 %s, max %s", p.policy, m.tiles,
			fmtMS(pct(m.tileMS, 50)), fmtMS(pct(m.tileMS, 90)), fmtMS(pct(m.tileMS, 100)))
		if m.retried > 0 {
			line += fmt.Sprintf("; %d tiles needed a retry", m.retried)
		}
		out = append(out, line)
	}
	return out
}

func (r *report) targetsTable() *table {
	t := &table{
		head:  []string{"target", "value", "goal", "verdict"},
		right: []bool{false, true, false, false},
	}
	// (1) median under 15 ms.
	val, v := "-", "n/a: (1) "+strings.ToLower(strings.TrimPrefix(r.skipReason("seed"), "SKIPPED: "))
	if s := r.seed; s != nil && len(s.lat) > 0 {
		m := pct(s.lat, 50)
		val = fmtDur(m)
		if m < seedMedianTarget {
			v = fmt.Sprintf("MET (%s under; the seed's nginx + workers took ~%s, %.0fx longer)", fmtDur(seedMedianTarget-m), fmtDur(seedStackTook), float64(seedStackTook)/float64(m))
		} else {
			v = fmt.Sprintf("MISSED by %s (%.1fx the target)", fmtDur(m-seedMedianTarget), float64(m)/float64(seedMedianTarget))
		}
		if s.bad > 0 || s.warmBad > 0 {
			v = fmt.Sprintf("NOT VALID: %d errors; ", s.bad+s.warmBad) + v
		}
	}
	t.rows = append(t.rows, []string{"(1) seed view median, through the master", val, "< 15 ms", v})
	if s := r.seed; s != nil && s.identical != "" {
		t.rows = append(t.rows, []string{"(1) seed view identical to in-process", s.identical, "yes", verdictYes(s.identical)})
	}

	// (2) ratio <= 1.15.
	val, v = "-", "n/a: (2) "+strings.ToLower(strings.TrimPrefix(r.skipReason("heavy"), "SKIPPED: "))
	if h := r.heavy; h != nil && len(h.master) > 0 && len(h.inproc) > 0 {
		ratio := float64(median(h.master)) / float64(median(h.inproc))
		val = fmt.Sprintf("%.2fx", ratio)
		if ratio <= heavyRatioTarget {
			v = fmt.Sprintf("MET (%s vs %s)", fmtDur(median(h.master)), fmtDur(median(h.inproc)))
		} else {
			v = fmt.Sprintf("MISSED by %.2fx (%s vs %s)", ratio-heavyRatioTarget, fmtDur(median(h.master)), fmtDur(median(h.inproc)))
		}
		if h.errs.total > 0 {
			v = fmt.Sprintf("NOT VALID: %d errors; ", h.errs.total) + v
		}
	} else if h != nil {
		v = "n/a: no successful run of both paths"
	}
	t.rows = append(t.rows, []string{"(2) heavy frame, master / in-process (medians)", val, "<= 1.15", v})
	if h := r.heavy; h != nil && h.identical != "" {
		t.rows = append(t.rows, []string{"(2) master's PNG identical to in-process", h.identical, "yes", verdictYes(h.identical)})
	}
	// (3) no target, but the streamed tiles must assemble into the frame.
	for _, p := range r.policies {
		if len(p.runs) == 0 {
			continue
		}
		ident := "yes"
		for _, run := range p.runs {
			if run.identical != "yes" {
				ident = run.identical
				break
			}
		}
		t.rows = append(t.rows, []string{"(3) " + p.policy + " streamed tiles identical", ident, "yes", verdictYes(ident)})
	}
	return t
}

func verdictYes(s string) string {
	if s == "yes" {
		return "MET"
	}
	return "FAILED: the pictures differ"
}

func (r *report) cpuTable() *table {
	head := append([]string{"window"}, cpuParts...)
	head = append(head, "total")
	t := &table{head: head, right: make([]bool, len(head))}
	for i := 1; i < len(head); i++ {
		t.right[i] = true
	}
	add := func(name string, u *cpuAcc) {
		if u == nil || u.secs <= 0 {
			return
		}
		cells := []string{name}
		var total float64
		for _, p := range cpuParts {
			v, ok := u.cores(p)
			if !ok {
				cells = append(cells, "-")
				continue
			}
			total += v
			cells = append(cells, fmt.Sprintf("%.2f", v))
		}
		t.rows = append(t.rows, append(cells, fmt.Sprintf("%.2f", total)))
	}
	if r.seed != nil {
		add("(1) seed view", &r.seed.cpu)
	}
	if r.heavy != nil {
		add("(2) heavy, master runs", &r.heavy.cpuMaster)
		add("(2) heavy, in-process runs", &r.heavy.cpuInprocess)
	}
	for _, p := range r.policies {
		add("(3) "+p.policy, &p.cpu)
	}
	return t
}

func (r *report) errorLines() []string {
	out := append([]string(nil), r.problems...)
	add := func(prefix string, l *errLog) {
		for _, e := range l.samples() {
			out = append(out, prefix+e)
		}
	}
	if r.seed != nil {
		add("(1) seed: ", &r.seed.errs)
	}
	if r.heavy != nil {
		add("(2) heavy: ", &r.heavy.errs)
	}
	for _, p := range r.policies {
		add("(3) "+p.policy+": ", &p.errs)
		for i, run := range p.runs {
			if run.identical != "yes" {
				out = append(out, fmt.Sprintf("(3) %s run %d: streamed tiles not identical: %s", p.policy, i+1, run.identical))
			}
		}
	}
	return out
}

func (r *report) footer() []string {
	lines := []string{
		fmt.Sprintf("Everything runs on this one machine and shares its %d cores: benchmandel (the client, and the in-process renders of (2)), "+
			"the master and both slaves, and anything else running (the \"other\" CPU column). The numbers compare setups with each other "+
			"on loopback; they are not the capacity of a real deployment, and on a busy machine they are noisy.", r.info.cores),
		"Latency and wall times: from just before the HTTP call to the end of the reply body (for (3), to the \"done\" event). " +
			"Every reply is checked (HTTP 200, a PNG of the right size); the pictures are decoded and compared pixel by pixel " +
			"with an in-process render outside the timed windows.",
		"(2) The in-process baseline includes PNG encoding (mandel.EncodePNG, the same encoder and level as the master) because the master's reply is a PNG too; " +
			"it does not include writing the PNG anywhere (it goes to a memory buffer).",
		"(3) busy = the sum of the master-side wall times of a slave's tiles (fetch of one tile, queueing in the slave included); " +
			"with several tiles in flight per slave it can exceed the wall time. imbalance = max busy / mean busy over the 2 slaves (1.00 = even). " +
			"Per-slave columns are from the run with the median wall time; the range is over all runs. Tiles travel as base64 PNGs in the stream.",
	}
	if r.interrupted {
		lines = append([]string{"INTERRUPTED: the run was stopped before every scenario finished."}, lines...)
	}
	return lines
}

func (r *report) printText(w io.Writer) {
	fmt.Fprintln(w, "calclab Mandelbrot benchmark (scripts/benchmandel)")
	for _, kv := range r.headerLines() {
		fmt.Fprintf(w, "%-7s %s\n", kv[0]+":", kv[1])
	}
	fmt.Fprintln(w)
	r.seedTable().text(w, "")
	fmt.Fprintln(w)
	r.heavyTable().text(w, "")
	for _, l := range r.heavyLines() {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	r.policyTable().text(w, "")
	for _, l := range r.policyLines() {
		fmt.Fprintln(w, l)
	}
	if errs := r.errorLines(); len(errs) > 0 {
		fmt.Fprintln(w, "\nERRORS (first distinct messages):")
		for _, e := range errs {
			fmt.Fprintln(w, "  "+e)
		}
	}
	fmt.Fprintln(w)
	r.targetsTable().text(w, "")
	if ct := r.cpuTable(); len(ct.rows) > 0 {
		fmt.Fprintf(w, "\nCPU used during the measured windows, in cores (of %d):\n", r.info.cores)
		ct.text(w, "")
	}
	if len(r.profiles) > 0 {
		fmt.Fprintln(w, "\nCPU profiles (--profile-dir; read with go tool pprof -top bin/master FILE):")
		for _, l := range r.profiles {
			fmt.Fprintln(w, "  "+l)
		}
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
	fmt.Fprintln(w, "### calclab Mandelbrot benchmark")
	fmt.Fprintln(w)
	for _, kv := range r.headerLines() {
		fmt.Fprintf(w, "- %s: %s\n", kv[0], kv[1])
	}
	fmt.Fprintln(w)
	r.seedTable().markdown(w)
	fmt.Fprintln(w)
	r.heavyTable().markdown(w)
	fmt.Fprintln(w)
	for _, l := range r.heavyLines() {
		fmt.Fprintln(w, "- "+l)
	}
	fmt.Fprintln(w)
	r.policyTable().markdown(w)
	if pl := r.policyLines(); len(pl) > 0 {
		fmt.Fprintln(w)
		for _, l := range pl {
			fmt.Fprintln(w, "- "+l)
		}
	}
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
		fmt.Fprintf(w, "\nCPU used during the measured windows, in cores (of %d):\n\n", r.info.cores)
		ct.markdown(w)
	}
	if len(r.profiles) > 0 {
		fmt.Fprintln(w, "\nCPU profiles (--profile-dir):")
		fmt.Fprintln(w)
		for _, l := range r.profiles {
			fmt.Fprintln(w, "- `"+l+"`")
		}
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
