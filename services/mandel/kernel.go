package mandel

import "math"

// Inside is the smooth iteration value of a point that did not escape within
// MaxIter iterations (drawn black).
const Inside float32 = -1

const (
	// escape2 is |z|² beyond which the orbit certainly diverges (|z| > 2).
	// It decides inside/outside, exactly like the seed's test.
	escape2 = 4.0
	// bailout2 is |z|² at which the smooth value is measured (|z| > 256):
	// once a point has escaped the radius-2 disc it is iterated on until it
	// passes this radius, which makes nu continuous across iteration bands.
	bailout2 = 256 * 256
	// maxExtra bounds those extra iterations (|z| just above 2 needs ~40).
	maxExtra = 128
	// firstCheckpoint is the first iteration at which the orbit is saved
	// for the periodicity check.
	firstCheckpoint = 8
)

// The escape-time kernel. Every multiply whose result feeds an addition is
// explicitly rounded (float64(...)): the Go spec lets the compiler fuse
// x*y+z into an FMA unless a conversion intervenes, which would make
// results depend on the platform (arm64, GOAMD64=v3) and break the
// "same tile, same pixels, any process" contract.
//
// One iteration is
//
//	zi = 2·zr·zi + ci;  zr = zr² - zi² + cr;  zr2, zi2 = zr², zi²
//
// A point escapes when zr2+zi2 > 4 within maxIter iterations. Periodicity
// check (Brent): z is saved at iterations 8, 16, 32, ...; if the orbit
// returns EXACTLY to the saved value it cycles forever and can never
// escape. Exact equality keeps every result identical to brute force.

// cheapInside reports whether c lies in the main cardioid or the period-2
// bulb, which never escape: those points skip the iteration.
func cheapInside(cr, ci float64) bool {
	xq := cr - 0.25
	ci2 := float64(ci * ci)
	q := float64(xq*xq) + ci2
	if float64(q*(q+xq)) <= float64(0.25*ci2) {
		return true
	}
	xb := cr + 1
	return float64(xb*xb)+ci2 <= 1.0/16
}

// smoothIter returns the smooth (continuous) escape value
// nu = n + 1 - log2(ln|z_n|) of c = cr + ci·i, or Inside. n is the number of
// iterations after which |z| exceeded 256; a point counts as escaped when
// |z| > 2 within maxIter iterations.
func smoothIter(cr, ci float64, maxIter int) float32 {
	if cheapInside(cr, ci) {
		return Inside
	}
	return iterate(cr, ci, 0, 0, 0, 0, 0, 0, 0, firstCheckpoint, maxIter)
}

// iterate continues an orbit from its state after n iterations (all checks
// for iteration n already done) and returns its smooth value or Inside.
func iterate(cr, ci, zr, zi, zr2, zi2, sr, si float64, n, checkpoint, maxIter int) float32 {
	for n < maxIter {
		zi = float64(2*zr*zi) + ci
		zr = zr2 - zi2 + cr
		zr2 = float64(zr * zr)
		zi2 = float64(zi * zi)
		n++
		if zr2+zi2 > escape2 {
			return escapeValue(cr, ci, zr, zi, zr2, zi2, n)
		}
		if zr == sr && zi == si {
			return Inside
		}
		if n == checkpoint {
			sr, si = zr, zi
			checkpoint *= 2
		}
	}
	return Inside
}

// escapeValue takes an orbit that has just left the radius-2 disc after n
// iterations, iterates it past radius 256 and returns its smooth value.
func escapeValue(cr, ci, zr, zi, zr2, zi2 float64, n int) float32 {
	for k := 0; k < maxExtra && zr2+zi2 <= bailout2; k++ {
		zi = float64(2*zr*zi) + ci
		zr = zr2 - zi2 + cr
		zr2 = float64(zr * zr)
		zi2 = float64(zi * zi)
		n++
	}
	return smoothValue(n, zr2+zi2)
}

// smoothValue is the smooth value of an orbit that passed radius 256 (or
// ran out of extra iterations) after n iterations with |z|² = r2.
func smoothValue(n int, r2 float64) float32 {
	if r2 > math.MaxFloat64 { // |c| so large that |z|² overflowed
		return 0
	}
	// ln|z| = ln(|z|²)/2 = log2(|z|²)·ln2/2, and r2 > 4 so both logs are > 0.
	nu := float64(n) + 1 - log2(float64(log2(r2)*(math.Ln2/2)))
	if !(nu >= 0) { // huge |c| escapes "before" iteration 0
		nu = 0
	}
	return float32(nu)
}

// nextPixel returns the first pixel index >= px of the row that needs
// iterating, writing Inside for the cardioid/bulb pixels it skips.
func nextPixel(dst []float32, px int, x0, step float64, ox int, ci float64) (int, float64) {
	for ; px < len(dst); px++ {
		cr := coordRe(x0, step, ox+px)
		if !cheapInside(cr, ci) {
			return px, cr
		}
		dst[px] = Inside
	}
	return px, 0
}

// orbit is the state of one lane of iterRow: pixel px at c = cr + ci·i
// after n iterations, with the periodicity check's saved value (sr, si),
// next checkpoint cp and lim = min(cp, maxIter).
type orbit struct {
	cr, zr, zi, zr2, zi2, sr, si float64
	px, n, cp, lim               int
}

// start loads pixel px (at real part cr) into the lane, at iteration 0.
func (o *orbit) start(px int, cr float64, maxIter int) {
	*o = orbit{cr: cr, px: px, cp: firstCheckpoint, lim: min(firstCheckpoint, maxIter)}
}

// iterate finishes the lane's orbit alone.
func (o *orbit) iterate(ci float64, maxIter int) float32 {
	return iterate(o.cr, ci, o.zr, o.zi, o.zr2, o.zi2, o.sr, o.si, o.n, o.cp, maxIter)
}

// finish decides what the last run2 step means for this lane, in the same
// order as iterate: escaped, cycled, out of budget, or checkpoint. It
// returns true when the lane's pixel has its final value in dst.
func (o *orbit) finish(dst []float32, ci float64, maxIter int) bool {
	switch {
	case o.zr2+o.zi2 > escape2:
		dst[o.px] = escapeValue(o.cr, ci, o.zr, o.zi, o.zr2, o.zi2, o.n)
	case o.zr == o.sr && o.zi == o.si, o.n >= maxIter:
		dst[o.px] = Inside
	case o.n >= o.lim:
		o.sr, o.si = o.zr, o.zi
		o.cp *= 2
		o.lim = min(o.cp, maxIter)
		return false
	default:
		return false
	}
	return true
}

// run2 iterates two orbits in lockstep until either escapes, reaches its
// iteration limit or may have cycled (zr equal to the saved one; finish
// checks zi). It is a leaf function so every value stays in a register.
func run2(a, b *orbit, ci float64) {
	cra, zra, zia, zra2, zia2, sra, na, lima := a.cr, a.zr, a.zi, a.zr2, a.zi2, a.sr, a.n, a.lim
	crb, zrb, zib, zrb2, zib2, srb, nb, limb := b.cr, b.zr, b.zi, b.zr2, b.zi2, b.sr, b.n, b.lim
	for {
		zia = float64(2*zra*zia) + ci
		zib = float64(2*zrb*zib) + ci
		zra = zra2 - zia2 + cra
		zrb = zrb2 - zib2 + crb
		zra2 = float64(zra * zra)
		zia2 = float64(zia * zia)
		zrb2 = float64(zrb * zrb)
		zib2 = float64(zib * zib)
		na++
		nb++
		if zra2+zia2 > escape2 || zrb2+zib2 > escape2 || na >= lima || nb >= limb || zra == sra || zrb == srb {
			break
		}
	}
	a.zr, a.zi, a.zr2, a.zi2, a.n = zra, zia, zra2, zia2, na
	b.zr, b.zi, b.zr2, b.zi2, b.n = zrb, zib, zrb2, zib2, nb
}

// iterRow fills dst[px] with the smooth value of pixel (px, py) of t, with
// the fastest kernel this build and CPU have (see Kernels): the vector
// kernel when it is compiled in (GOEXPERIMENT=simd on amd64) and the CPU
// has AVX2 or AVX-512, the scalar one otherwise. All give the same values,
// bit for bit.
func iterRow(dst []float32, t *Tile, py int) { bestKernel.row(dst, t, py) }

// scalarRow fills dst[px] with the smooth value of pixel (px, py) of t. It is
// equivalent to calling smoothIter for each pixel, bit for bit, but runs two
// orbits in lockstep ("lanes"): one orbit is a chain of dependent
// multiplies and adds, so a single one leaves most of the CPU's
// floating-point units idle. A lane whose orbit finishes is refilled with
// the next pixel of the row.
func scalarRow(dst []float32, t *Tile, py int) {
	x0, step, ox, maxIter := t.X0, t.Step, t.OX, t.MaxIter
	ci := coordIm(t.Y0, t.Step, t.OY+py)
	w := len(dst)

	var a, b orbit
	px, cr := nextPixel(dst, 0, x0, step, ox, ci)
	if px >= w {
		return
	}
	a.start(px, cr, maxIter)
	px, cr = nextPixel(dst, px+1, x0, step, ox, ci)
	if px >= w {
		dst[a.px] = a.iterate(ci, maxIter)
		return
	}
	b.start(px, cr, maxIter)
	for {
		run2(&a, &b, ci)
		doneA := a.finish(dst, ci, maxIter)
		doneB := b.finish(dst, ci, maxIter)
		if doneA {
			px, cr := nextPixel(dst, max(a.px, b.px)+1, x0, step, ox, ci)
			if px >= w { // row exhausted: finish b alone
				if !doneB {
					dst[b.px] = b.iterate(ci, maxIter)
				}
				return
			}
			a.start(px, cr, maxIter)
		}
		if doneB {
			px, cr := nextPixel(dst, max(a.px, b.px)+1, x0, step, ox, ci)
			if px >= w { // row exhausted: finish a alone
				dst[a.px] = a.iterate(ci, maxIter)
				return
			}
			b.start(px, cr, maxIter)
		}
	}
}

// log2 returns log2(x) for finite x > 0 with an absolute error below 1e-9
// (ample for a float32 result), in portable arithmetic: math.Log is assembly
// on some platforms and pure Go on others, and several times slower.
// x = 2^e · m, m in [1, 2) is split as m = t·(1+r) with t = 1 + k/256 from a
// table and 0 <= r < 1/256, and log2(1+r) is a 4-term series.
func log2(x float64) float64 {
	b := math.Float64bits(x)
	e := int((b>>52)&0x7ff) - 1023
	if e == -1023 { // subnormal: scale into the normal range first
		return log2(x*(1<<54)) - 54
	}
	k := (b >> (52 - log2TableBits)) & (1<<log2TableBits - 1)
	m := math.Float64frombits(b&(1<<52-1) | 1023<<52)
	ent := &log2Table[k]
	r := float64((m - ent.t) * ent.inv)
	// ln(1+r) = r - r²/2 + r³/3 - r⁴/4 + O(r⁵), r < 2^-8.
	p := madd(r, -1.0/4, 1.0/3)
	p = madd(p, r, -1.0/2)
	p = madd(p, r, 1)
	return float64(e) + madd(float64(p*r), 1/math.Ln2, ent.log2t)
}

const log2TableBits = 8

type log2Entry struct{ t, inv, log2t float64 }

// log2Table[k] holds t = 1 + k/256, 1/t and log2(t). log2(t) comes from a
// slowly converging but exact-in-principle series evaluated in plain
// float64 arithmetic, so the table is bit-identical on every platform.
var log2Table = func() (tab [1 << log2TableBits]log2Entry) {
	for k := range tab {
		t := 1 + float64(k)/(1<<log2TableBits)
		// ln t = 2·atanh(s), s = (t-1)/(t+1) <= 1/3: sum s^(2j+1)/(2j+1)
		// until the terms vanish.
		s := (t - 1) / (t + 1)
		s2 := float64(s * s)
		sum, term := 0.0, s
		for j := 0; term != 0 && j < 100; j++ {
			sum += term / float64(2*j+1)
			term = float64(term * s2)
		}
		tab[k] = log2Entry{t: t, inv: 1 / t, log2t: float64(2*sum) / math.Ln2}
	}
	return tab
}()

// madd returns a*b + c with the product rounded first: the explicit
// conversion forbids FMA fusion, which would change results by platform.
func madd(a, b, c float64) float64 { return float64(a*b) + c }
