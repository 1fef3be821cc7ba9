package main

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
	"github.com/calclab/calclab/services/mandel"
)

// cpuParts are the columns of the CPU table, in order.
var cpuParts = []string{"benchmandel", "master", "slave-1", "slave-2", "other"}

type report struct {
	cfg         config
	info        benchkit.SysInfo
	capacity    [2]int
	masterFlags []string
	seed        *seedResult
	heavy       *heavyResult
	policies    []*policyResult
	kernels     *kernelsResult
	interrupted bool
	problems    []string // children that died
	logs        []string // what the services logged
	profiles    []string // --profile-dir
}

func newReport(cfg config) *report {
	return &report{cfg: cfg, info: benchkit.GatherSysInfo(cfg.binDir)}
}

// anyErrors says whether any request failed or any picture was not
// identical to the in-process render.
func (r *report) anyErrors() bool {
	if s := r.seed; s != nil && (s.bad > 0 || s.warmBad > 0 || s.errs.Total() > 0 || s.identical != "yes") {
		return true
	}
	if h := r.heavy; h != nil && (h.errs.Total() > 0 || h.identical != "yes") {
		return true
	}
	for _, p := range r.policies {
		if p.errs.Total() > 0 {
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

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func frameDesc(f mandel.Frame) string {
	return fmt.Sprintf("%dx%d, max_iter %d, centre (%.10f, %.10f), scale %.6g (%.4g wide x %.4g high)",
		f.Width, f.Height, f.MaxIter, f.CX, f.CY, f.Scale, f.Scale*float64(f.Width), f.Scale*float64(f.Height))
}

func (r *report) headerLines() [][2]string {
	flags := "master --log-level warn " + strings.Join(r.masterFlags, " ") + "; slaves --id slave-N --log-level warn"
	if len(r.cfg.slaveFlags) > 0 {
		flags += " " + strings.Join(r.cfg.slaveFlags, " ")
	}
	tile := "the master's default tiles ((2): bands of whole rows, as /mandelbrot/render cuts a frame)"
	if r.cfg.tile > 0 {
		tile = fmt.Sprintf("tile=%d", r.cfg.tile)
	}
	return append(r.info.HeaderLines(), [][2]string{
		{"load", r.info.Load},
		{"setup", fmt.Sprintf("1 master + 2 slaves (%s), all on 127.0.0.1; in-process renders use GOMAXPROCS %d", benchkit.CapacityPhrase(r.capacity), runtime.GOMAXPROCS(0))},
		{"flags", flags},
		{"frames", fmt.Sprintf("(1) the master's defaults = seed view 500x500, max_iter 30, real axis -1.5..1.5; (2)+(3) %s, %s", frameDesc(heavyFrame), tile)},
		{"run", fmt.Sprintf("(1) %s warm-up + %s of sequential requests; (2) 1 warm-up + %d measured renders per path, interleaved; (3) %d streams per policy, alternating",
			r.cfg.warmup, r.cfg.duration, r.cfg.heavyRuns, r.cfg.heavyRuns)},
	}...)
}

func (r *report) seedTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"(1) seed view", "requests", "errors", "median", "p90", "min", "max", "server median", "notes"},
		Right: []bool{false, true, true, true, true, true, true, true, false},
	}
	s := r.seed
	name := "GET master/mandelbrot/render (defaults)"
	if s == nil {
		t.Rows = append(t.Rows, []string{name, "-", "-", "-", "-", "-", "-", "-", r.skipReason("seed")})
		return t
	}
	errs := benchkit.Commas(float64(s.bad))
	if s.bad > 0 {
		errs += " ERRORS"
	}
	cells := []string{name, benchkit.Commas(float64(s.requests)), errs, "-", "-", "-", "-", "-"}
	if len(s.lat) > 0 {
		cells[3], cells[4] = benchkit.FmtDur(benchkit.Percentile(s.lat, 50)), benchkit.FmtDur(benchkit.Percentile(s.lat, 90))
		cells[5], cells[6] = benchkit.FmtDur(s.lat[0]), benchkit.FmtDur(s.lat[len(s.lat)-1])
	}
	if len(s.serverMS) > 0 {
		cells[7] = benchkit.FmtMS(benchkit.Percentile(s.serverMS, 50))
	}
	notes := fmt.Sprintf("500x500 PNG verified on every reply, %s; %s tiles (bands) per frame", fmtBytes(s.pngBytes), orDash(s.tiles))
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
	t.Rows = append(t.Rows, append(cells, notes))
	if len(s.inTotal) > 0 {
		lat := slices.Clone(s.inTotal)
		slices.Sort(lat)
		t.Rows = append(t.Rows, []string{"in-process, all cores, render + PNG encode", benchkit.Commas(float64(len(lat))), "0",
			benchkit.FmtDur(benchkit.Percentile(lat, 50)), benchkit.FmtDur(benchkit.Percentile(lat, 90)), benchkit.FmtDur(lat[0]), benchkit.FmtDur(lat[len(lat)-1]), "-",
			fmt.Sprintf("reference, no target: mandel.RenderFrame(frame, %d) median %s + mandel.EncodePNG median %s, run after the measured window",
				runtime.GOMAXPROCS(0), benchkit.FmtDur(benchkit.Median(s.inRender)), benchkit.FmtDur(benchkit.Median(s.inEncode)))})
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
	return benchkit.FmtDur(benchkit.Median(ds)), benchkit.FmtDur(mn), benchkit.FmtDur(mx)
}

func (r *report) heavyTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"(2) heavy frame", "runs", "median", "min", "max", "notes"},
		Right: []bool{false, true, true, true, true, false},
	}
	h := r.heavy
	if h == nil {
		t.Rows = append(t.Rows, []string{"master, 2 slaves / in-process", "-", "-", "-", "-", r.skipReason("heavy")})
		return t
	}
	med, lo, hi := durStats(h.master)
	notes := fmt.Sprintf("GET master/mandelbrot/render, request to end of PNG; server X-Render-Ms median %s; %s tiles",
		benchkit.FmtMS(benchkit.Median(h.serverMS)), orDash(h.tiles))
	if len(h.slaves) > 0 {
		notes += " (" + h.slaves[len(h.slaves)-1] + " in the last run)"
	}
	notes += fmt.Sprintf("; PNG %s; warm-up run %s", fmtBytes(h.pngBytes), benchkit.FmtDur(h.warmMaster))
	t.Rows = append(t.Rows, []string{"master, 2 slaves", strconv.Itoa(len(h.master)), med, lo, hi, notes})
	med, lo, hi = durStats(h.inproc)
	notes = fmt.Sprintf("mandel.RenderFrame(frame, %d) median %s + mandel.EncodePNG median %s, no network; PNG %s; warm-up run %s",
		runtime.GOMAXPROCS(0), benchkit.FmtDur(benchkit.Median(h.render)), benchkit.FmtDur(benchkit.Median(h.encode)), fmtBytes(h.inprocBytes), benchkit.FmtDur(h.warmInproc))
	t.Rows = append(t.Rows, []string{"in-process, all cores, render + PNG encode", strconv.Itoa(len(h.inproc)), med, lo, hi, notes})
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
			benchkit.Commas(float64(h.colours)), 100*h.black),
	}
}

func (r *report) policyTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"(3) policy", "runs", "wall median", "server ms", "first tile", "slave-1 tiles", "slave-1 busy", "slave-2 tiles", "slave-2 busy", "imbalance", "identical"},
		Right: []bool{false, true, true, true, true, true, true, true, true, true, false},
	}
	if len(r.policies) == 0 {
		for _, p := range policies {
			t.Rows = append(t.Rows, []string{p, "-", "-", "-", "-", "-", "-", "-", "-", "-", r.skipReason("policies")})
		}
		return t
	}
	ids := slaveIDs(nil)
	for _, p := range r.policies {
		m := p.medianRun()
		if m == nil {
			t.Rows = append(t.Rows, []string{p.policy, "0", "-", "-", "-", "-", "-", "-", "-", "-", "ERRORS (see below)"})
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
		if p.errs.Total() > 0 {
			runs += fmt.Sprintf(" +%d ERRORS", p.errs.Total())
		}
		t.Rows = append(t.Rows, []string{
			p.policy, runs, benchkit.FmtDur(benchkit.Median(walls)), benchkit.FmtMS(m.serverMS), benchkit.FmtDur(m.firstTile),
			strconv.Itoa(m.slaves[ids[0]].Tiles), benchkit.FmtMS(m.slaves[ids[0]].BusyMS),
			strconv.Itoa(m.slaves[ids[1]].Tiles), benchkit.FmtMS(m.slaves[ids[1]].BusyMS),
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
			benchkit.FmtMS(benchkit.Percentile(m.tileMS, 50)), benchkit.FmtMS(benchkit.Percentile(m.tileMS, 90)), benchkit.FmtMS(benchkit.Percentile(m.tileMS, 100)))
		if m.retried > 0 {
			line += fmt.Sprintf("; %d tiles needed a retry", m.retried)
		}
		out = append(out, line)
	}
	return out
}

func (r *report) targetsTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"target", "value", "goal", "verdict"},
		Right: []bool{false, true, false, false},
	}
	// (1) median under seedMedianTarget.
	val, v := "-", "n/a: (1) "+strings.ToLower(strings.TrimPrefix(r.skipReason("seed"), "SKIPPED: "))
	if s := r.seed; s != nil && len(s.lat) > 0 {
		m := benchkit.Percentile(s.lat, 50)
		val = benchkit.FmtDur(m)
		if m < seedMedianTarget {
			v = fmt.Sprintf("MET (%s under; the seed's nginx + workers took ~%s, %.0fx longer)", benchkit.FmtDur(seedMedianTarget-m), benchkit.FmtDur(seedStackTook), float64(seedStackTook)/float64(m))
		} else {
			v = fmt.Sprintf("MISSED by %s (%.1fx the target)", benchkit.FmtDur(m-seedMedianTarget), float64(m)/float64(seedMedianTarget))
		}
		if s.bad > 0 || s.warmBad > 0 {
			v = fmt.Sprintf("NOT VALID: %d errors; ", s.bad+s.warmBad) + v
		}
	}
	t.Rows = append(t.Rows, []string{"(1) seed view median, through the master", val, "< " + benchkit.FmtDur(seedMedianTarget), v})
	if s := r.seed; s != nil && s.identical != "" {
		t.Rows = append(t.Rows, []string{"(1) seed view identical to in-process", s.identical, "yes", verdictYes(s.identical)})
	}

	// (2) the in-process render alone, then the ratio.
	val, v = "-", "n/a: (2) not run"
	if h := r.heavy; h != nil && len(h.render) > 0 {
		m := benchkit.Median(h.render)
		val = benchkit.FmtDur(m)
		if m <= heavyRenderTarget {
			v = fmt.Sprintf("MET (%s under; kernel %s)", benchkit.FmtDur(heavyRenderTarget-m), mandel.Kernels()[0].Name)
		} else {
			v = fmt.Sprintf("MISSED by %s (%.1fx the target; kernel %s)", benchkit.FmtDur(m-heavyRenderTarget), float64(m)/float64(heavyRenderTarget), mandel.Kernels()[0].Name)
		}
	}
	t.Rows = append(t.Rows, []string{"(2) heavy frame, in-process render only, both cores (median)", val, "<= " + benchkit.FmtDur(heavyRenderTarget), v})

	val, v = "-", "n/a: (2) "+strings.ToLower(strings.TrimPrefix(r.skipReason("heavy"), "SKIPPED: "))
	if h := r.heavy; h != nil && len(h.master) > 0 && len(h.inproc) > 0 {
		ratio := float64(benchkit.Median(h.master)) / float64(benchkit.Median(h.inproc))
		val = fmt.Sprintf("%.2fx", ratio)
		if ratio <= heavyRatioTarget {
			v = fmt.Sprintf("MET (%s vs %s)", benchkit.FmtDur(benchkit.Median(h.master)), benchkit.FmtDur(benchkit.Median(h.inproc)))
		} else {
			v = fmt.Sprintf("MISSED by %.2fx (%s vs %s)", ratio-heavyRatioTarget, benchkit.FmtDur(benchkit.Median(h.master)), benchkit.FmtDur(benchkit.Median(h.inproc)))
		}
		if h.errs.Total() > 0 {
			v = fmt.Sprintf("NOT VALID: %d errors; ", h.errs.Total()) + v
		}
	} else if h != nil {
		v = "n/a: no successful run of both paths"
	}
	t.Rows = append(t.Rows, []string{"(2) heavy frame, master / in-process (medians)", val, fmt.Sprintf("<= %.2f", heavyRatioTarget), v})
	if h := r.heavy; h != nil && h.identical != "" {
		t.Rows = append(t.Rows, []string{"(2) master's PNG identical to in-process", h.identical, "yes", verdictYes(h.identical)})
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
		t.Rows = append(t.Rows, []string{"(3) " + p.policy + " streamed tiles identical", ident, "yes", verdictYes(ident)})
	}
	return t
}

func verdictYes(s string) string {
	if s == "yes" {
		return "MET"
	}
	return "FAILED: the pictures differ"
}

func (r *report) cpuTable() *benchkit.Table {
	t := benchkit.NewCPUTable("window", cpuParts)
	add := func(name string, u *benchkit.CPUUse) {
		if u.Measured() {
			t.Rows = append(t.Rows, append([]string{name}, u.Row(cpuParts)...))
		}
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
	add := func(prefix string, l *benchkit.ErrLog) {
		for _, e := range l.Samples() {
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
	return []string{
		fmt.Sprintf("Everything runs on this one machine and shares its %d cores: benchmandel (the client, and the in-process renders of (2)), "+
			"the master and both slaves, and anything else running (the \"other\" CPU column). The numbers compare setups with each other "+
			"on loopback; they are not the capacity of a real deployment, and on a busy machine they are noisy.", r.info.Cores),
		"Latency and wall times: from just before the HTTP call to the end of the reply body (for (3), to the \"done\" event). " +
			"Every reply is checked (HTTP 200, a PNG of the right size); the pictures are decoded and compared pixel by pixel " +
			"with an in-process render outside the timed windows.",
		"(2) The in-process baseline includes PNG encoding (mandel.EncodePNG: the Up filter and klauspost/compress's deflate at level 1, on one core) because the master's reply is a PNG too; " +
			"it does not include writing the PNG anywhere (it goes to a memory buffer). The master's PNG is joined from bands the slaves filtered and compressed " +
			"themselves with mandel's runDeflater (AppendBand), slightly larger.",
		"(3) busy = the sum of the master-side wall times of a slave's tiles (fetch of one tile, queueing in the slave included); " +
			"with several tiles in flight per slave it can exceed the wall time. imbalance = max busy / mean busy over the 2 slaves (1.00 = even). " +
			"Per-slave columns are from the run with the median wall time; the range is over all runs. Tiles travel as base64 PNGs in the stream.",
	}
}

// print writes the report as text, or as Markdown for docs/benchmarks.md.
func (r *report) print(d benchkit.Doc) {
	d.Header("calclab Mandelbrot benchmark", "scripts/benchmandel", 7, r.headerLines())
	d.Blank()
	d.Table(r.seedTable())
	d.Blank()
	d.Table(r.heavyTable())
	if d.Markdown {
		d.Blank()
	}
	d.List(r.heavyLines())
	d.Blank()
	d.Table(r.policyTable())
	if pl := r.policyLines(); len(pl) > 0 {
		if d.Markdown {
			d.Blank()
		}
		d.List(pl)
	}
	if r.kernels != nil {
		d.Blank()
		d.Table(r.kernelsTable())
		if d.Markdown {
			d.Blank()
		}
		d.List(r.kernelsLines())
	}
	d.Errors(r.errorLines())
	d.Blank()
	d.Table(r.targetsTable())
	d.CaptionedTable(fmt.Sprintf("CPU used during the measured windows, in cores (of %d):", r.info.Cores), r.cpuTable())
	if len(r.profiles) > 0 {
		if d.Markdown {
			fmt.Fprintln(d.W, "\nCPU profiles (--profile-dir):")
			fmt.Fprintln(d.W)
			for _, l := range r.profiles {
				fmt.Fprintln(d.W, "- `"+l+"`")
			}
		} else {
			fmt.Fprintln(d.W, "\nCPU profiles (--profile-dir; read with go tool pprof -top bin/master FILE):")
			for _, l := range r.profiles {
				fmt.Fprintln(d.W, "  "+l)
			}
		}
	}
	d.Logs(r.logs)
	d.Footer(r.interrupted, r.footer())
}
