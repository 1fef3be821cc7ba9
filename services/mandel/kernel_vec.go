//go:build goexperiment.simd && amd64

package mandel

import (
	"math/bits"
	"simd/archsimd"
)

//go:generate sh -c "python3 gen_kernel.py > kernel_vec_run.go"

// The vector kernel: groups vectors of lanes (8 float64 with AVX-512, 4
// with AVX2), each lane one pixel of the row, run the iteration side by
// side, chunk iterations at a time without looking at the lanes. One orbit
// is a chain of dependent multiplies and adds; groups independent vectors
// in flight keep the vector units busy while each waits for its last
// result.
//
// Same pixels as the scalar kernel, bit for bit:
//   - the lanes do the scalar kernel's operations in its order, rounding
//     each (Mul, Add and Sub are separate instructions; nothing is fused
//     into FMA; 2·zr is zr+zr, exact either way);
//   - a chunk ORs every iteration's escape test (|z|² > 4) into a mask; a
//     lane that escaped inside a chunk keeps z from that chunk's start and
//     idles (its values are not used) until escNum/8 of the
//     lanes have escaped; then its pixel is queued and finished with the
//     other queued ones in vectors (fin4, fin8): the same iterations from
//     the chunk's start to the exact escape and on to radius 256, and the
//     smooth value with escapeValue's operations in its order, including
//     log2 (vlog2x4, vlog2x8: the same bit arithmetic, table entries and
//     polynomial; its two arguments, r2 > 4 and log2(r2)·ln2/2 > 0.69,
//     are normal floats, the only case it handles);
//   - a lane that needs the end of its budget (fewer than chunk iterations
//     left) is finished by the scalar code (iterate);
//   - the periodicity check compares z with a saved orbit point at chunk
//     ends only, and saves every lane's z when the row's chunk count
//     reaches 8, 16, 32, ... (at iteration counts that differ from lane to
//     lane) rather than at each orbit's iterations 8, 16, 32, ...: if z_n
//     equals an earlier z_m exactly, the orbit repeats forever (the
//     iteration is a function of z alone) and can never escape, so the
//     pixel is Inside whenever and however often the check looks. Checking
//     at other times only finds cycles at other times; the saves are still
//     further and further apart, so every cycle is found.
//
// Rows of max_iter <= flatMaxIter go to flat8/flat4 instead (flatRowKernel):
// no refill, no periodicity check, every lane of a vector of consecutive
// pixels iterated to max_iter or radius 256.
//
// Lanes whose pixel is decided are refilled with the row's next pixel
// (after the cardioid/bulb test, as in the scalar kernel); when two or
// fewer lanes are left at the end of a row they finish in scalar code.

const (
	chunk = 8 // iterations between looks at the lanes
	// vecCheckpoint is the first iteration at which a vector lane saves
	// its orbit for the periodicity check (a multiple of chunk).
	vecCheckpoint = 64
	maxLanes      = 8
)

// escNum: the hot loop returns once escNum/8 of the active lanes have
// escaped (escaped lanes idle until then).
var escNum = 4

// vecState is the lanes' state between runs of the hot loop.
type vecState struct {
	cr, zr, zi, zr0, zi0, sr, si [groups][maxLanes]float64
	ev, et                       [groups][maxLanes]float64 // escaped (1) or not (0), chunk of escape
	active, esc, cyc             [groups]uint8
	px, start, evt               [groups][maxLanes]int
}

// finBatch holds escaped lanes waiting to be finished together by fin4 or
// fin8: c's real part, z at the start of the chunk in which the lane
// escaped, the iterations n0 done by then and the pixel; the vector code
// fills in steps and r2.
type finBatch struct {
	cr, zr, zi, n0, nu [maxLanes]float64
	px                 [maxLanes]int
	n                  int
	// scratch of vlog2x4 and vlog2x8: table indices and entries
	k     [maxLanes]uint64
	log2t [maxLanes]float64
}

// lookup loads log2Table's log2(t) of indices k[:lanes] (a gather).
func (b *finBatch) lookup(lanes int) {
	for i, k := range b.k[:lanes] {
		b.log2t[i] = log2Table[k&(1<<log2TableBits-1)].log2t
	}
}

// push queues an escaped lane.
func (b *finBatch) push(cr, zr, zi float64, n0, px int) {
	b.cr[b.n], b.zr[b.n], b.zi[b.n], b.n0[b.n], b.px[b.n] = cr, zr, zi, float64(n0), px
	b.n++
}

// flush finishes the queued lanes with fin and writes their smooth values.
func (b *finBatch) flush(dst []float32, ci float64, lanes int) {
	if b.n == 0 {
		return
	}
	for i := b.n; i < lanes; i++ { // pad with a lane that escapes
		b.cr[i], b.zr[i], b.zi[i], b.n0[i] = b.cr[0], b.zr[0], b.zi[0], b.n0[0]
	}
	if lanes == 8 {
		fin8(b, ci)
	} else {
		fin4(b, ci)
	}
	for i := range b.n {
		dst[b.px[i]] = float32(b.nu[i])
	}
	b.n = 0
}

func vectorKernels() []kernel {
	var ks []kernel
	if archsimd.X86.AVX512() {
		ks = append(ks, kernel{name: "avx512", lanes: 8, row: func(dst []float32, t *Tile, py int) { vecRow(dst, t, py, 8) }})
	}
	if archsimd.X86.AVX2() {
		ks = append(ks, kernel{name: "avx2", lanes: 4, row: func(dst []float32, t *Tile, py int) { vecRow(dst, t, py, 4) }})
	}
	return ks
}

// rowCursor hands out the row's pixels that need iterating: prep4 or prep8
// runs the cardioid/bulb test on lanes pixels at a time, writes Inside for
// the pixels it passes and queues the others (qpx, qcr).
type rowCursor struct {
	dst          []float32
	x0, step, ci float64
	ox, next     int // next: the first pixel not yet tested
	lanes        int
	head, tail   int // queue: qpx[head:tail], qcr[head:tail]
	qpx          [rowQueue]int
	qcr          [rowQueue]float64
	crbuf        [maxLanes]float64
}

// rowQueue is the length of a rowCursor's queue.
const rowQueue = 256

// pop returns the row's next pixel that needs iterating and its real part,
// or ok false when the row has none left.
func (cur *rowCursor) pop() (px int, cr float64, ok bool) {
	if cur.head == cur.tail {
		cur.head, cur.tail = 0, 0
		if cur.lanes == 8 {
			prep8(cur)
		} else {
			prep4(cur)
		}
		if cur.tail == 0 {
			return 0, 0, false
		}
	}
	px, cr = cur.qpx[cur.head], cur.qcr[cur.head]
	cur.head++
	return px, cr, true
}

// queue takes the lanes pixels from cur.next on, whose real parts prep
// left in crbuf and whose cardioid/bulb tests are the bits of inside.
func (cur *rowCursor) queue(inside uint8) {
	n := min(cur.lanes, len(cur.dst)-cur.next)
	for i := range n {
		if inside&(1<<i) != 0 {
			cur.dst[cur.next+i] = Inside
		} else {
			cur.qpx[cur.tail], cur.qcr[cur.tail] = cur.next+i, cur.crbuf[i]
			cur.tail++
		}
	}
	cur.next += n
}

// vecRow is scalarRow with lanes lanes per vector (8: run8 and fin8, 4:
// run4 and fin4).
func vecRow(dst []float32, t *Tile, py, lanes int) {
	maxIter := t.MaxIter
	if maxIter <= flatMaxIter {
		flatRowKernel(dst, t, py, lanes)
		return
	}
	if maxIter < max(vecMinIter, 2*chunk) || len(dst) < 2*lanes {
		scalarRow(dst, t, py)
		return
	}
	ci := coordIm(t.Y0, t.Step, t.OY+py)
	cur := rowCursor{dst: dst, x0: t.X0, step: t.Step, ci: ci, ox: t.OX, lanes: lanes}
	var st vecState
	var fb finBatch
	T := 0 // chunks run so far
	// The periodicity check saves every lane's z when T reaches nextCP
	// (a power of two), whenever the lane started: one event per power of
	// two for the whole row rather than per lane.
	nextCP := vecCheckpoint / chunk
	for g := range groups {
		for i := range lanes {
			st.refill(&cur, g, i, T, maxIter)
		}
	}
	for {
		limit, left := st.nextEvent(lanes)
		limit = min(limit, nextCP)
		if left <= 2 {
			fb.flush(dst, ci, lanes)
			st.finishScalar(dst, ci, T, maxIter, lanes)
			return
		}
		T0 := T
		minEsc := max(1, left*escNum/8)
		if lanes == 8 { // direct calls: st stays on the stack
			T += run8(&st, ci, limit-T, minEsc)
		} else {
			T += run4(&st, ci, limit-T, minEsc)
		}
		for g := range groups {
			for b := st.esc[g] | st.cyc[g]; b != 0; b &= b - 1 {
				i := bits.TrailingZeros8(b)
				if st.esc[g]&(1<<i) != 0 {
					// It escaped within the chunk (and before maxIter: a
					// chunk never runs past it), so it cannot have cycled.
					fb.push(st.cr[g][i], st.zr0[g][i], st.zi0[g][i], chunk*(T0+int(st.et[g][i])-1-st.start[g][i]), st.px[g][i])
					if fb.n == lanes {
						fb.flush(dst, ci, lanes)
					}
				} else {
					dst[st.px[g][i]] = Inside
				}
				st.refill(&cur, g, i, T, maxIter)
			}
		}
		if T < limit {
			continue
		}
		if T == nextCP { // every lane saves z for the periodicity check
			st.sr, st.si = st.zr, st.zi
			nextCP *= 2
		}
		for g := range groups {
			for b := st.active[g]; b != 0; b &= b - 1 {
				i := bits.TrailingZeros8(b)
				if st.evt[g][i] != T {
					continue
				}
				// fewer than chunk iterations left: finish in scalar code
				n := chunk * (T - st.start[g][i])
				zr, zi := st.zr[g][i], st.zi[g][i]
				dst[st.px[g][i]] = iterate(st.cr[g][i], ci, zr, zi, float64(zr*zr), float64(zi*zi),
					st.sr[g][i], st.si[g][i], n, max(2*n, firstCheckpoint), maxIter)
				st.refill(&cur, g, i, T, maxIter)
			}
		}
	}
}

// flatRow is the state flat4 and flat8 share for one row.
type flatRow struct {
	dst          []float32
	x0, step, ci float64
	ox, maxIter  int
	fb           finBatch // vlog2's scratch
	out          [flatGroups8 * maxLanes]float32
}

// flatRowKernel is the kernel for low max_iter (the seed's view has 30):
// vectors of consecutive pixels iterated to the end together. When every
// orbit is short, the main kernel's bookkeeping per pixel (refill,
// batched finishing, the periodicity check) costs more than the
// iterations a lane idles for here while the others in its vector finish.
func flatRowKernel(dst []float32, t *Tile, py, lanes int) {
	f := flatRow{dst: dst, x0: t.X0, step: t.Step, ci: coordIm(t.Y0, t.Step, t.OY+py), ox: t.OX, maxIter: t.MaxIter}
	if lanes == 8 {
		for px := 0; px < len(dst); px += flatGroups8 * 8 {
			flat8(&f, px)
		}
		return
	}
	for px := 0; px < len(dst); px += flatGroups4 * 4 {
		flat4(&f, px)
	}
}

// refill loads lane (g, i) with the row's next pixel at chunk T, or makes
// it idle when the row has none left.
func (st *vecState) refill(cur *rowCursor, g, i, T, maxIter int) {
	px, cr, ok := cur.pop()
	st.zr[g][i], st.zi[g][i], st.sr[g][i], st.si[g][i] = 0, 0, 0, 0
	if !ok {
		st.active[g] &^= 1 << i
		st.cr[g][i] = 0
		return
	}
	st.active[g] |= 1 << i
	st.cr[g][i], st.px[g][i], st.start[g][i] = cr, px, T
	st.evt[g][i] = T + maxIter/chunk
}

// nextEvent returns the first chunk at which an active lane reaches the
// end of its budget, and how many lanes are active.
func (st *vecState) nextEvent(lanes int) (limit, left int) {
	limit = int(^uint(0) >> 1)
	for g := range groups {
		left += bits.OnesCount8(st.active[g])
		for b := st.active[g]; b != 0; b &= b - 1 {
			limit = min(limit, st.evt[g][bits.TrailingZeros8(b)])
		}
	}
	return limit, left
}

// finishScalar completes the active lanes one by one with the scalar code.
func (st *vecState) finishScalar(dst []float32, ci float64, T, maxIter, lanes int) {
	for g := range groups {
		for b := st.active[g]; b != 0; b &= b - 1 {
			i := bits.TrailingZeros8(b)
			zr, zi := st.zr[g][i], st.zi[g][i]
			n := chunk * (T - st.start[g][i])
			dst[st.px[g][i]] = iterate(st.cr[g][i], ci, zr, zi, float64(zr*zr), float64(zi*zi),
				st.sr[g][i], st.si[g][i], n, max(2*n, firstCheckpoint), maxIter)
		}
		st.active[g] = 0
	}
}
