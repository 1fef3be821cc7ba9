package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/calclab/calclab/scripts/internal/benchkit"
	"github.com/calclab/calclab/services/mandel"
)

// kernelFrame is frame (2)'s region at a quarter of its resolution (the
// same picture, 1/16 of the pixels), so that every kernel renders it on one
// core in well under a second.
var kernelFrame = mandel.Frame{
	CX: heavyFrame.CX, CY: heavyFrame.CY, Scale: heavyFrame.Scale * 4,
	Width: heavyFrame.Width / 4, Height: heavyFrame.Height / 4, MaxIter: heavyFrame.MaxIter,
}

// kernelRuns is how many timed renders each kernel gets; the table shows
// the fastest (the least disturbed by other load) and the range.
const kernelRuns = 5

type kernelResult struct {
	name   string
	lanes  int
	times  []time.Duration // sorted
	errMsg string
}

type kernelsResult struct {
	iterations int64
	mhz        float64 // nominal clock from /proc/cpuinfo, 0 if unknown
	kernels    []kernelResult
}

// runKernels renders kernelFrame with every kernel this binary can run on
// this CPU, one worker (one core), and times it. Iterations are brute-force
// escape iterations (mandel.Iterations): the work every kernel does, minus
// the shortcuts all of them take.
func (b *bench) runKernels(ctx context.Context) *kernelsResult {
	progress("kernels: counting the iterations of %dx%d @ %d", kernelFrame.Width, kernelFrame.Height, kernelFrame.MaxIter)
	res := &kernelsResult{mhz: cpuMHz()}
	iters, err := mandel.Iterations(ctx, kernelFrame.Tile())
	if err != nil {
		res.kernels = append(res.kernels, kernelResult{name: "-", errMsg: err.Error()})
		return res
	}
	res.iterations = iters
	for _, k := range mandel.Kernels() {
		kr := kernelResult{name: k.Name, lanes: k.Lanes}
		progress("kernels: %s", k.Name)
		for range kernelRuns {
			start := time.Now()
			if _, err := mandel.RenderIterKernel(ctx, kernelFrame.Tile(), 1, k.Name); err != nil {
				kr.errMsg = err.Error()
				break
			}
			kr.times = append(kr.times, time.Since(start))
		}
		slices.Sort(kr.times)
		res.kernels = append(res.kernels, kr)
	}
	return res
}

// cpuMHz reads the first "cpu MHz" of /proc/cpuinfo (Linux), or 0.
func cpuMHz() float64 {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "cpu MHz" {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

func (r *report) kernelsTable() *benchkit.Table {
	t := &benchkit.Table{
		Head:  []string{"(4) kernel", "lanes", "runs", "fastest", "slowest", "Giter/s per core", "peak Giter/s (lanes x clock)", "of peak", "vs scalar"},
		Right: []bool{false, true, true, true, true, true, true, true, true},
	}
	k := r.kernels
	if k == nil {
		return t
	}
	var scalar time.Duration
	for _, kr := range k.kernels {
		if kr.name == mandel.ScalarKernel && len(kr.times) > 0 {
			scalar = kr.times[0]
		}
	}
	for _, kr := range k.kernels {
		if kr.errMsg != "" || len(kr.times) == 0 {
			t.Rows = append(t.Rows, []string{kr.name, strconv.Itoa(kr.lanes), "0", "-", "-", "-", "-", "-", "error: " + kr.errMsg})
			continue
		}
		best := kr.times[0]
		rate := float64(k.iterations) / best.Seconds() / 1e9
		peak, ofPeak := "-", "-"
		if k.mhz > 0 {
			p := float64(kr.lanes) * k.mhz / 1e3
			peak, ofPeak = fmt.Sprintf("%.1f", p), fmt.Sprintf("%.1f%%", 100*rate/p)
		}
		vs := "-"
		if scalar > 0 {
			vs = fmt.Sprintf("%.2fx", float64(scalar)/float64(best))
		}
		t.Rows = append(t.Rows, []string{kr.name, strconv.Itoa(kr.lanes), strconv.Itoa(len(kr.times)),
			benchkit.FmtDur(best), benchkit.FmtDur(kr.times[len(kr.times)-1]), fmt.Sprintf("%.3f", rate), peak, ofPeak, vs})
	}
	return t
}

func (r *report) kernelsLines() []string {
	k := r.kernels
	if k == nil {
		return nil
	}
	return []string{
		fmt.Sprintf("(4) frame (2)'s region at 1/4 resolution (%dx%d, max_iter %d), mandel.RenderIterKernel(frame, 1 worker, kernel), %d runs each; %d brute-force iterations (escape iteration or max_iter per pixel outside the cardioid and bulb: mandel.Iterations); renders use the first kernel listed (GOMAXPROCS %d)",
			kernelFrame.Width, kernelFrame.Height, kernelFrame.MaxIter, kernelRuns, k.iterations, runtime.GOMAXPROCS(0)),
		fmt.Sprintf("peak = float64 lanes per vector x the nominal clock (%.0f MHz from /proc/cpuinfo): one iteration per lane per cycle, an upper bound no kernel reaches (an iteration is 9 dependent vector operations)", k.mhz),
	}
}
