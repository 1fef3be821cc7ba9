package main

import (
	"testing"
	"time"
)

// TestMergeSlices: a row measured in slices reports the sum of its
// slices: the rate over their measured time (not the mean of their
// rates), pooled latencies, the CPU weighted by each slice's time, and for
// wrk the median of the slices' percentiles.
func TestMergeSlices(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		slices   []*runStats
		rate     float64
		p50      time.Duration
		master   float64
		requests int64
	}{
		{
			name: "closed loop",
			slices: []*runStats{
				{requests: 1000, good: 1000, wall: time.Second, lat: []int64{int64(1 * ms), int64(3 * ms)}, cores: map[string]float64{"master": 0.8}},
				{requests: 3001, good: 3000, bad: 1, wall: 3 * time.Second, lat: []int64{int64(2 * ms)}, cores: map[string]float64{"master": 0.4}},
			},
			rate: 1000, p50: 2 * ms, master: 0.5, requests: 4001,
		},
		{
			name: "wrk",
			slices: []*runStats{
				{requests: 100, good: 100, wall: time.Second, pcts: map[float64]time.Duration{50: 5 * ms}},
				{requests: 200, good: 200, wall: time.Second, pcts: map[float64]time.Duration{50: 1 * ms}},
				{requests: 300, good: 300, wall: time.Second, pcts: map[float64]time.Duration{50: 3 * ms}},
			},
			rate: 200, p50: 3 * ms, requests: 600,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := mergeSlices(tc.slices)
			if st.rate() != tc.rate || st.requests != tc.requests {
				t.Errorf("rate %v over %d requests, want %v over %d", st.rate(), st.requests, tc.rate, tc.requests)
			}
			if st.pct(50) != tc.p50 {
				t.Errorf("p50 %v, want %v", st.pct(50), tc.p50)
			}
			if got := st.cores["master"]; got != tc.master {
				t.Errorf("master cores %v, want %v", got, tc.master)
			}
		})
	}
}

// TestPairOf: with --slices above 1, master is measured with nginx and
// master-wrk with nginx-wrk, unless the other one is not selected; with
// --slices 1 nothing is paired.
func TestPairOf(t *testing.T) {
	tests := []struct {
		args []string
		key  string
		want string
	}{
		{nil, "master", "nginx"},
		{nil, "master-wrk", "nginx-wrk"},
		{nil, "nginx", ""},
		{nil, "batch", ""},
		{[]string{"--only", "2,2w"}, "master", ""},
		{[]string{"--slices", "1"}, "master", ""},
	}
	for _, tc := range tests {
		cfg, err := parseFlags(tc.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := newReport(cfg)
		got := ""
		if m := r.pairOf(r.get(tc.key)); m != nil {
			got = m.key
		}
		if got != tc.want {
			t.Errorf("%q: pair of %s is %q, want %q", tc.args, tc.key, got, tc.want)
		}
	}
}
