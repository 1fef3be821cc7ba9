package mandel

import (
	"context"
	"fmt"
	"strings"
)

// kernel is one implementation of the escape-time loop over a row.
type kernel struct {
	name  string
	lanes int // float64 lanes per vector (1: scalar)
	row   func(dst []float32, t *Tile, py int)
}

// ScalarKernel is the name of the portable kernel every build has.
const ScalarKernel = "scalar"

var scalarKernel = kernel{name: ScalarKernel, lanes: 1, row: scalarRow}

// kernels lists the kernels this build and CPU can run, fastest first; the
// scalar one is always last. vectorKernels is empty without GOEXPERIMENT=simd.
var kernels = append(vectorKernels(), scalarKernel)

// bestKernel is what every render uses.
var bestKernel = kernels[0]

// vecMinIter is the smallest max_iter for which rows go to the vector
// kernel (which also needs max_iter >= 16). It was 256 while an escaped
// lane was redone in scalar code, which made the seed's 30-iteration view
// 2x slower on the vector kernel; since escaped lanes are finished in
// vectors the vector kernel is 12-15% faster there too (BenchmarkRender).
var vecMinIter = 0

// flatMaxIter is the largest max_iter for which the vector kernels take a
// row with their flat variant (flat4, flat8: vectors of consecutive pixels
// iterated to the end together, no refill); at most maxExtra, which it
// relies on. On the seed's view (max_iter 30) one worker rendered it in
// 3.6 ms against 7.1 ms with the refilling kernel (BenchmarkRender).
var flatMaxIter = 64

// KernelInfo describes a kernel for benchmarks and logs.
type KernelInfo struct {
	Name  string // "avx512", "avx2" or "scalar"
	Lanes int    // float64 lanes per vector register
}

// Kernels returns the kernels this binary can run on this CPU, the one
// renders use first. All of them give identical pixels.
func Kernels() []KernelInfo {
	out := make([]KernelInfo, len(kernels))
	for i, k := range kernels {
		out[i] = KernelInfo{Name: k.name, Lanes: k.lanes}
	}
	return out
}

// lookupKernel finds a kernel of Kernels by name.
func lookupKernel(name string) (kernel, error) {
	var names []string
	for _, k := range kernels {
		if k.name == name {
			return k, nil
		}
		names = append(names, k.name)
	}
	return kernel{}, invalid("kernel", "unknown kernel %q on this build and CPU (have %s)", name, strings.Join(names, ", "))
}

// RenderIterKernel is RenderIter with a named kernel (one of Kernels), for
// benchmarks and tests that compare kernels.
func RenderIterKernel(ctx context.Context, t Tile, workers int, name string) ([]float32, error) {
	k, err := lookupKernel(name)
	if err != nil {
		return nil, err
	}
	if _, err := checkRender(t); err != nil {
		return nil, err
	}
	out := make([]float32, t.Width*t.Height)
	err = parallelRows(ctx, t.Height, workers, 0, func(py int, _ []float32) {
		k.row(out[py*t.Width:(py+1)*t.Width], &t, py)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Iterations counts the escape-time iterations of the tile as brute force
// does them: for each pixel outside the cardioid and the period-2 bulb, the
// iteration at which |z| passed 2, or MaxIter if it never did (no
// periodicity shortcut). Benchmarks divide it by a render's time to get
// iterations per second; it is not itself fast.
func Iterations(ctx context.Context, t Tile) (int64, error) {
	if err := t.Validate(Limits{}); err != nil {
		return 0, err
	}
	var total int64
	for py := range t.Height {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("mandel: counting stopped: %w", err)
		}
		ci := coordIm(t.Y0, t.Step, t.OY+py)
		for px := range t.Width {
			cr := coordRe(t.X0, t.Step, t.OX+px)
			if cheapInside(cr, ci) {
				continue
			}
			var zr, zi, zr2, zi2 float64
			n := 0
			for n < t.MaxIter {
				zi = float64(2*zr*zi) + ci
				zr = zr2 - zi2 + cr
				zr2 = float64(zr * zr)
				zi2 = float64(zi * zi)
				n++
				if zr2+zi2 > escape2 {
					break
				}
			}
			total += int64(n)
		}
	}
	return total, nil
}
