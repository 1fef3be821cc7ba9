package main

import (
	"strings"
	"testing"
	"time"
)

// ran gives the row a run of rate items/s over one second, with the
// master's CPU in cores and a 0.5 ms latency.
func ran(s *row, rate, masterCores float64) {
	s.st = &runStats{
		requests: int64(rate), good: int64(rate), wall: time.Second,
		lat: []int64{int64(500 * time.Microsecond)}, latSched: []int64{int64(600 * time.Microsecond)},
		cores: map[string]float64{"master": masterCores, "other": 0.1},
	}
	if s.targetRate > 0 {
		s.st.achieved = s.targetRate
	}
}

func testReport() *report {
	cfg := config{concurrency: 32, batchSize: 10000, manySlaves: 50, warmup: time.Second, duration: 5 * time.Second}
	return &report{cfg: cfg, rows: scenarioRows(cfg)}
}

// verdictOf returns the value and verdict of the targets table row whose
// name starts with prefix.
func verdictOf(t *testing.T, r *report, prefix string) (string, string) {
	t.Helper()
	for _, row := range r.targetsTable().Rows {
		if strings.HasPrefix(row[0], prefix) {
			return row[1], row[3]
		}
	}
	t.Fatalf("no target row %q", prefix)
	return "", ""
}

func TestTargetVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		set         func(r *report)
		row         string
		wantValue   string
		wantVerdict string
	}{
		{
			name: "wrk ratio met",
			set: func(r *report) {
				ran(r.get("master-wrk"), 12000, 0.3)
				ran(r.get("nginx-wrk"), 10000, 0)
			},
			row: "(2w)/(3w)", wantValue: "1.20x", wantVerdict: "MET (0.20x above, +20.0%); 12,000 vs 10,000 tasks/s",
		},
		{
			name: "wrk ratio missed",
			set: func(r *report) {
				ran(r.get("master-wrk"), 9000, 0.3)
				ran(r.get("nginx-wrk"), 15000, 0)
			},
			row: "(2w)/(3w)", wantValue: "0.60x", wantVerdict: "MISSED by 0.40x (-40.0%); 9,000 vs 15,000 tasks/s",
		},
		{
			name: "wrk ratio without wrk",
			set: func(r *report) {
				ran(r.get("master-wrk"), 9000, 0.3)
				r.get("nginx-wrk").skipped = "wrk not installed: apt-get install wrk"
			},
			row: "(2w)/(3w)", wantValue: "-", wantVerdict: "n/a: (3w) nginx via wrk wrk not installed: apt-get install wrk",
		},
		{
			name: "wrk ratio with errors",
			set: func(r *report) {
				ran(r.get("master-wrk"), 9000, 0.3)
				ran(r.get("nginx-wrk"), 15000, 0)
				r.get("master-wrk").st.bad = 12
			},
			row: "(2w)/(3w)", wantValue: "-", wantVerdict: "NOT VALID: (2w) had 12 errors",
		},
		{
			name: "master CPU per task met",
			set:  func(r *report) { ran(r.get("master"), 10000, 0.3) },
			row:  "(2) master CPU", wantValue: "30.0 µs", wantVerdict: "MET (10.0 µs under, -25.0%)",
		},
		{
			name: "master CPU per task missed",
			set:  func(r *report) { ran(r.get("master"), 10000, 1) },
			row:  "(2) master CPU", wantValue: "100.0 µs", wantVerdict: "MISSED by 60.0 µs (+150.0%, 2.50x the target)",
		},
		{
			name: "master CPU not measured",
			set: func(r *report) {
				ran(r.get("master"), 10000, 1)
				delete(r.get("master").st.cores, "master")
			},
			row: "(2) master CPU", wantValue: "-", wantVerdict: "n/a: (2): the master's CPU was not measured",
		},
		{
			name: "growth with 50 slaves met",
			set: func(r *report) {
				r.get("master-half").targetRate, r.get("master-50").targetRate = 2000, 2000
				ran(r.get("master-half"), 2000, 0.2)
				ran(r.get("master-50"), 2000, 0.21)
			},
			row: "(5)/(2h)", wantValue: "1.05x", wantVerdict: "MET (0.05x under, -4.5%); 105.0 µs vs 100.0 µs per task",
		},
		{
			name: "growth with 50 slaves missed",
			set: func(r *report) {
				r.get("master-half").targetRate, r.get("master-50").targetRate = 2000, 2000
				ran(r.get("master-half"), 2000, 0.2)
				ran(r.get("master-50"), 2000, 0.36)
			},
			row: "(5)/(2h)", wantValue: "1.80x", wantVerdict: "MISSED by 0.70x (+63.6%, 1.64x the target); 180.0 µs vs 100.0 µs per task",
		},
		{
			name: "growth with a sender behind",
			set: func(r *report) {
				r.get("master-half").targetRate, r.get("master-50").targetRate = 2000, 2000
				ran(r.get("master-half"), 2000, 0.2)
				ran(r.get("master-50"), 2000, 0.2)
				r.get("master-50").st.achieved = 1500
			},
			row: "(5)/(2h)", wantValue: "1.00x", wantVerdict: "MET (0.10x under, -9.1%); 100.0 µs vs 100.0 µs per task; (5)'s sender fell behind",
		},
		{
			name: "growth without the 50-slave run",
			set:  func(r *report) { ran(r.get("master-half"), 2000, 0.2) },
			row:  "(5)/(2h)", wantValue: "-", wantVerdict: "n/a: (5) master @ half load, 50 slaves not run (--only)",
		},
		{
			name: "batch met",
			set:  func(r *report) { ran(r.get("batch"), 1200000, 0.5) },
			row:  "(4) batch", wantValue: "1,200,000 exprs/s", wantVerdict: "MET (200,000 exprs/s above, +20.0%)",
		},
		{
			name: "batch missed at the old target",
			set:  func(r *report) { ran(r.get("batch"), 300000, 0.5) },
			row:  "(4) batch", wantValue: "300,000 exprs/s", wantVerdict: "MISSED by 700,000 exprs/s (-70.0%)",
		},
		{
			name: "nginx ratio met at exactly 1.0x",
			set: func(r *report) {
				ran(r.get("master"), 10000, 0.3)
				ran(r.get("nginx"), 10000, 0)
			},
			row: "(2)/(3)", wantValue: "1.00x", wantVerdict: "MET (0.00x above, +0.0%); 10,000 vs 10,000 tasks/s",
		},
		{
			name: "master CPU per task over nginx's",
			set: func(r *report) {
				ran(r.get("master"), 10000, 0.5)
				ran(r.get("nginx"), 10000, 0)
				r.get("nginx").st.cores["nginx"] = 0.3
			},
			row: "(2)÷(3)", wantValue: "1.67x", wantVerdict: "(no target: compares runs on a machine whose speed drifts); nginx's own CPU per task 30.0 µs",
		},
		{
			name: "master CPU per task over nginx's, nginx not run",
			set:  func(r *report) { ran(r.get("master"), 10000, 0.5) },
			row:  "(2)÷(3)", wantValue: "-", wantVerdict: "n/a: (3) nginx not run (--only)",
		},
		{
			name: "master CPU per task over nginx's, nginx's CPU not measured",
			set: func(r *report) {
				ran(r.get("master"), 10000, 0.5)
				ran(r.get("nginx"), 10000, 0)
			},
			row: "(2)÷(3)", wantValue: "-", wantVerdict: "n/a: (3) nginx's CPU was not measured",
		},
		{
			name: "half-load p50",
			set:  func(r *report) { r.get("master-half").targetRate = 2000; ran(r.get("master-half"), 2000, 0.2) },
			row:  "(2h) p50", wantValue: "0.500 ms", wantVerdict: "MET (0.500 ms under)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testReport()
			tc.set(r)
			v, verdict := verdictOf(t, r, tc.row)
			if v != tc.wantValue || verdict != tc.wantVerdict {
				t.Errorf("value %q, verdict %q\nwant  %q, %q", v, verdict, tc.wantValue, tc.wantVerdict)
			}
		})
	}
}

// TestTargetsNeverWeakened pins the targets.
func TestTargetsNeverWeakened(t *testing.T) {
	if batchTarget < 1000000 || masterCPUTarget > 40 || growthTarget > 1.1 || ratioTarget < 1 || halfP50Target > time.Millisecond {
		t.Errorf("a target is weaker than issue 11's: batch %v, master CPU %v µs, growth %vx, ratio %vx, p50 %v",
			batchTarget, masterCPUTarget, growthTarget, ratioTarget, halfP50Target)
	}
}

func TestCPUTableMasterColumn(t *testing.T) {
	r := testReport()
	ran(r.get("master"), 10000, 0.4)
	r.get("master").st.cores["slave-1"] = 0.1
	tab := r.cpuTable()
	if len(tab.Rows) != 1 {
		t.Fatalf("rows %q", tab.Rows)
	}
	row := tab.Rows[0]
	if got := row[len(row)-1]; got != "40.0 µs/task" {
		t.Errorf("master CPU per item %q, want 40.0 µs/task", got)
	}
	if got := row[len(row)-2]; got != "50.0 µs/task" {
		t.Errorf("service CPU per item %q, want 50.0 µs/task", got)
	}
	if got, want := strings.Join(tab.Head[1:len(cpuCols)+1], ","), "benchcalc,wrk,master,slave-1,slave-2,slave-3..50,nginx,other"; got != want {
		t.Errorf("CPU columns %s, want %s", got, want)
	}
}
