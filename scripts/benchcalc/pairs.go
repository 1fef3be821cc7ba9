package main

import (
	"context"
	"slices"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
)

// Two ratios are targets: (2)/(3) and (2w)/(3w). This machine's speed
// drifts by up to 2x within minutes, and measured one window after the
// other (10-15 s apart) nginx alone served 11.7k and 15.0k tasks/s in runs
// a minute apart: one run's ratio moved by more than its distance to the
// target. So each pair is measured in --slices alternating slices (master,
// nginx, master, nginx, ...) after one warm-up each, and each row sums
// its slices: the drift hits both sides alike.

// pairOf is the row measured together with s (nginx for master, nginx-wrk
// for master-wrk), or nil: --slices 1, the other row not selected or
// skipped, or s not the first of a pair.
func (r *report) pairOf(s *row) *row {
	if r.cfg.slices < 2 {
		return nil
	}
	var key string
	switch s.key {
	case "master":
		key = "nginx"
	case "master-wrk":
		key = "nginx-wrk"
	default:
		return nil
	}
	m := r.get(key)
	if !r.cfg.only[key] || m.skipped != "" {
		return nil
	}
	return m
}

// runPair measures a and b in alternating slices and stores each row's
// merged stats.
func (b *bench) runPair(ctx context.Context, a, c *row) {
	cfg := b.cfg
	rows := [2]*row{a, c}
	var got [2][]*runStats
	var wrks [2][]*wrkResult
	progress("%s and %s: %d alternating slices of %s each", a.num, c.num, cfg.slices, cfg.duration/time.Duration(cfg.slices))
	for i := range cfg.slices {
		for k, s := range rows {
			if s.skipped != "" {
				continue // wrk failed in an earlier slice
			}
			warm := time.Duration(0)
			if i == 0 {
				warm = cfg.warmup
			}
			dur := cfg.duration / time.Duration(cfg.slices)
			var st *runStats
			if s.key == "master-wrk" || s.key == "nginx-wrk" {
				var r *wrkResult
				if st, r = b.wrkSlice(ctx, s, warm, dur); r != nil {
					wrks[k] = append(wrks[k], r)
				}
			} else {
				st = b.closedSlice(ctx, s, warm, dur)
			}
			if ctx.Err() != nil {
				a.skipped, c.skipped = "interrupted", "interrupted"
				return
			}
			if st != nil {
				got[k] = append(got[k], st)
			}
		}
	}
	for k, s := range rows {
		if s.skipped != "" || len(got[k]) == 0 {
			continue
		}
		s.st, s.slices = mergeSlices(got[k]), len(got[k])
		if len(wrks[k]) > 0 {
			s.wrk = &wrkResult{reqPerSec: float64(s.st.requests) / s.st.wall.Seconds()}
		}
		progress("%s %s: %s %s/s over %d slices, p50 %s, p99 %s, %d errors", s.num, s.key, benchkit.Commas(s.st.rate()), s.unit,
			len(got[k]), benchkit.FmtDur(s.st.pct(50)), benchkit.FmtDur(s.st.pct(99)), s.st.bad)
		for _, e := range s.st.errs {
			progress("  error: %s", e)
		}
	}
}

// closedSlice is a closed-loop window of dur after warmup against master
// or nginx, with the CPU used in it.
func (b *bench) closedSlice(ctx context.Context, s *row, warmup, dur time.Duration) *runStats {
	cfg := b.cfg
	ph, use := b.cpuPhases()
	do := singleJob(b.c.MasterURL+"/submit-task", "payload", true)
	if s.key == "nginx" {
		do = singleJob(b.c.nginxURL+"/compute", "expression", false)
	}
	progress("%s %s: %d workers, warm-up %s + %s", s.num, s.key, cfg.concurrency, warmup, dur)
	st := runClosed(ctx, b.client, cfg.concurrency, warmup, dur, b.seq, 1, do, ph)
	if ctx.Err() == nil {
		st.cores = b.cores(use)
	}
	return st
}

// mergeSlices sums the slices of one row: counts and measured time add
// up, latencies are pooled, the CPU is averaged over the measured time.
// wrk reports only percentiles, not latencies: a merged wrk row's are the
// median over its slices of each percentile.
func mergeSlices(ss []*runStats) *runStats {
	out := &runStats{cores: map[string]float64{}}
	var pcts []map[float64]time.Duration
	for _, s := range ss {
		out.requests += s.requests
		out.good += s.good
		out.bad += s.bad
		out.warmBad += s.warmBad
		out.wall += s.wall
		out.lat = append(out.lat, s.lat...)
		out.errs = append(out.errs, s.errs...)
		for k, v := range s.cores {
			out.cores[k] += v * s.wall.Seconds()
		}
		if len(s.pcts) > 0 {
			pcts = append(pcts, s.pcts)
		}
	}
	if out.wall > 0 {
		for k := range out.cores {
			out.cores[k] /= out.wall.Seconds()
		}
	}
	slices.Sort(out.lat)
	if len(out.lat) == 0 && len(pcts) > 0 {
		out.pcts = map[float64]time.Duration{}
		for p := range pcts[0] {
			var vs []time.Duration
			for _, m := range pcts {
				if v, ok := m[p]; ok {
					vs = append(vs, v)
				}
			}
			slices.Sort(vs)
			out.pcts[p] = vs[len(vs)/2]
		}
	}
	return out
}
