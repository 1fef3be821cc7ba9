#!/usr/bin/env python3
# gen_kernel.py writes kernel_vec_run.go: the vector kernel's hot loop for
# AVX-512 (Float64x8) and AVX2 (Float64x4), one explicit copy per group of
# lanes so every value stays in a register. Run: go generate ./services/mandel
import sys

GROUPS = "ab"


def gen(w):
    t = f"Float64x{w}"
    arr = f"(*[{w}]float64)" if w != 8 else "&"
    def ptr(x):
        return f"(*[{w}]float64)({x}[:{w}])" if w != 8 else f"&{x}"
    out = [f"""// run{w} runs up to chunks chunks of chunk iterations on every lane, with
// {w}-lane vectors. It stops early after a chunk in which an active lane
// cycled (st.cyc) or after which at least minEsc active lanes have escaped
// (st.esc): escaped lanes keep iterating (their values are not used), so
// the caller is not called back for each escape. It returns the chunks run
// and leaves in st each lane's z at the end, and for the escaped lanes z at
// the start of the chunk in which they escaped (st.zr0, st.zi0) and that
// chunk's number (st.et, 1 for the first chunk of this call).
//
// The escape test of each iteration goes into a running maximum of |z|²
// rather than a mask: a lane escaped in the chunk iff that maximum is not
// <= 4 (NaN, which only an escaped orbit can reach, counts as escaped).
func run{w}(st *vecState, ci float64, chunks, minEsc int) int {{
	civ := archsimd.Broadcast{t}(ci)"""]
    for j, g in enumerate(GROUPS):
        out.append(f"""	cr{g} := archsimd.Load{t}Slice(st.cr[{j}][:])
	zr{g} := archsimd.Load{t}Slice(st.zr[{j}][:])
	zi{g} := archsimd.Load{t}Slice(st.zi[{j}][:])
	zr2{g}, zi2{g} := zr{g}.Mul(zr{g}), zi{g}.Mul(zi{g})
	archsimd.Broadcast{t}(0).StoreSlice(st.ev[{j}][:])""")
    out.append("""	done := 0
	for done < chunks {""")
    for j, g in enumerate(GROUPS):
        out.append(f"""		alive{g} := archsimd.Load{t}Slice(st.ev[{j}][:]).Equal(archsimd.Broadcast{t}(0))
		zr{g}.StoreMasked({ptr(f"st.zr0[{j}]")}, alive{g})
		zi{g}.StoreMasked({ptr(f"st.zi0[{j}]")}, alive{g})
		m{g} := zr2{g}.Add(zi2{g})""")
    out.append("""		for range chunk {""")
    for g in GROUPS:
        out.append(f"""			zi{g} = zr{g}.Add(zr{g}).Mul(zi{g}).Add(civ)""")
    for g in GROUPS:
        out.append(f"""			zr{g} = zr2{g}.Sub(zi2{g}).Add(cr{g})""")
    for g in GROUPS:
        out.append(f"""			zr2{g}, zi2{g} = zr{g}.Mul(zr{g}), zi{g}.Mul(zi{g})""")
    for g in GROUPS:
        out.append(f"""			m{g} = m{g}.Max(zr2{g}.Add(zi2{g}))""")
    out.append(f"""		}}
		done++
		four := archsimd.Broadcast{t}(escape2)
		zero := archsimd.Broadcast{t}(0)
		now := archsimd.Broadcast{t}(float64(done))
		var cyc uint8
		nesc := 0""")
    for j, g in enumerate(GROUPS):
        out.append(f"""		ok{g} := m{g}.LessEqual(four)
		ev{g} := archsimd.Load{t}Slice(st.ev[{j}][:])
		archsimd.Load{t}Slice(st.et[{j}][:]).Merge(now, ok{g}.Or(ev{g}.NotEqual(zero))).StoreSlice(st.et[{j}][:])
		ev{g} = ev{g}.Merge(archsimd.Broadcast{t}(1), ok{g})
		ev{g}.StoreSlice(st.ev[{j}][:])
		st.esc[{j}] = ev{g}.NotEqual(zero).ToBits() & st.active[{j}]
		nesc += bits.OnesCount8(st.esc[{j}])
		eq{g} := zr{g}.Equal(archsimd.Load{t}Slice(st.sr[{j}][:])).And(zi{g}.Equal(archsimd.Load{t}Slice(st.si[{j}][:])))
		st.cyc[{j}] = eq{g}.ToBits() & st.active[{j}]
		cyc |= st.cyc[{j}]""")
    out.append("""		if cyc != 0 || nesc >= minEsc {
			break
		}
	}""")
    for j, g in enumerate(GROUPS):
        out.append(f"""	zr{g}.StoreSlice(st.zr[{j}][:])
	zi{g}.StoreSlice(st.zi[{j}][:])""")
    out.append("""	return done
}
""")
    out.append(f"""// fin{w} finishes the escaped orbits of p in {w}-lane vectors: from each
// lane's z at the start of the chunk in which it escaped, it iterates to
// the first |z|² > escape2 and on past bailout2 (at most maxExtra more
// iterations), exactly as iterate and escapeValue do, and leaves in p the
// iterations taken and the final |z|². Every lane must escape within chunk
// iterations (fill unused lanes with a copy of a used one).
func fin{w}(p *finBatch, ci float64) {{
	civ := archsimd.Broadcast{t}(ci)
	cr := archsimd.Load{t}Slice(p.cr[:])
	zr := archsimd.Load{t}Slice(p.zr[:])
	zi := archsimd.Load{t}Slice(p.zi[:])
	zr2, zi2 := zr.Mul(zr), zi.Mul(zi)
	one := archsimd.Broadcast{t}(1)
	four := archsimd.Broadcast{t}(escape2)
	big := archsimd.Broadcast{t}(bailout2)
	extra := archsimd.Broadcast{t}(maxExtra)
	inf := archsimd.Broadcast{t}(math.Inf(1))
	zero := archsimd.Broadcast{t}(0)
	res := archsimd.Broadcast{t}(-1) // iterations taken; < 0 while running
	j, nesc, rr := zero, inf, zero
	for range chunk + maxExtra {{
		zi = zr.Add(zr).Mul(zi).Add(civ)
		zr = zr2.Sub(zi2).Add(cr)
		zr2, zi2 = zr.Mul(zr), zi.Mul(zi)
		j = j.Add(one)
		r2 := zr2.Add(zi2)
		nesc = nesc.Min(j.Merge(inf, r2.Greater(four)))
		running := res.Less(zero)
		now := r2.Greater(big).Or(j.Sub(nesc).GreaterEqual(extra)).And(running)
		res = j.Merge(res, now)
		rr = r2.Merge(rr, now)
		if res.Less(zero).ToBits() == 0 {{
			break
		}}
	}}
	// smoothValue: nu = n + 1 - log2(log2(r2)·ln2/2), 0 for overflowed
	// |z|² and for nu < 0.
	n := archsimd.Load{t}Slice(p.n0[:]).Add(res)
	l := vlog2x{w}(vlog2x{w}(rr, p).Mul(archsimd.Broadcast{t}(math.Ln2/2)), p)
	nu := n.Add(one).Sub(l)
	nu = nu.Merge(zero, nu.GreaterEqual(zero))
	nu = zero.Merge(nu, rr.Greater(archsimd.Broadcast{t}(math.MaxFloat64)))
	nu.StoreSlice(p.nu[:])
}}

// vlog2x{w} is log2 of {w} lanes, bit for bit, for normal x > 0 (other
// lanes give garbage); p holds the table entries it looks up.
func vlog2x{w}(x archsimd.{t}, p *finBatch) archsimd.{t} {{
	b := x.AsUint64x{w}()
	magic := archsimd.BroadcastUint64x{w}(0x4330000000000000) // 2^52
	e := b.ShiftAllRight(52).Or(magic).AsFloat64x{w}().Sub(archsimd.Broadcast{t}(1<<52 + 1023))
	k := b.ShiftAllRight(52 - log2TableBits).And(archsimd.BroadcastUint64x{w}(1<<log2TableBits - 1))
	k.StoreSlice(p.k[:])
	p.lookup({w})
	// the table's t = 1 + k/256 and 1/t, computed (exactly as the table was)
	one := archsimd.Broadcast{t}(1)
	tt := k.Or(magic).AsFloat64x{w}().Sub(archsimd.Broadcast{t}(1 << 52)).Mul(archsimd.Broadcast{t}(1.0 / (1 << log2TableBits))).Add(one)
	m := b.And(archsimd.BroadcastUint64x{w}(1<<52 - 1)).Or(archsimd.BroadcastUint64x{w}(1023 << 52)).AsFloat64x{w}()
	r := m.Sub(tt).Mul(one.Div(tt))
	q := r.Mul(archsimd.Broadcast{t}(-1.0 / 4)).Add(archsimd.Broadcast{t}(1.0 / 3))
	q = q.Mul(r).Add(archsimd.Broadcast{t}(-1.0 / 2))
	q = q.Mul(r).Add(one)
	return e.Add(q.Mul(r).Mul(archsimd.Broadcast{t}(1 / math.Ln2)).Add(archsimd.Load{t}Slice(p.log2t[:])))
}}
""")
    out.append(f"""// prep{w} runs the cardioid/bulb test (cheapInside, the same operations)
// on the row's pixels from cur.next on, {w} at a time, until the row ends
// or the queue is full (see rowCursor.queue).
func prep{w}(cur *rowCursor) {{
	ci2 := float64(cur.ci * cur.ci)
	civ2 := archsimd.Broadcast{t}(ci2)
	qlim := archsimd.Broadcast{t}(float64(0.25 * ci2))
	quarter := archsimd.Broadcast{t}(0.25)
	one := archsimd.Broadcast{t}(1)
	sixteenth := archsimd.Broadcast{t}(1.0 / 16)
	x0 := archsimd.Broadcast{t}(cur.x0)
	step := archsimd.Broadcast{t}(cur.step)
	// pixel indices as floats (exact below 2^53, like coordRe's)
	idx := archsimd.Load{t}Slice(iota8[:]).Add(archsimd.Broadcast{t}(float64(cur.ox + cur.next)))
	for cur.next < len(cur.dst) && cur.tail <= rowQueue-{w} {{
		cr := idx.Mul(step).Add(x0)
		xq := cr.Sub(quarter)
		q := xq.Mul(xq).Add(civ2)
		in := q.Mul(q.Add(xq)).LessEqual(qlim)
		xb := cr.Add(one)
		in = in.Or(xb.Mul(xb).Add(civ2).LessEqual(sixteenth))
		cr.StoreSlice(cur.crbuf[:])
		cur.queue(in.ToBits())
		idx = idx.Add(archsimd.Broadcast{t}({w}))
	}}
}}
""")
    return "\n".join(out)


def gen_flat(w, G):
    """flat{w} with G vectors of w lanes in flight (letters a, b, ...)."""
    t = f"Float64x{w}"
    m = f"Mask64x{w}"
    gs = "abcdefgh"[:G]
    n = G * w

    def each(fmt, indent="\t"):
        return "".join(indent + fmt.format(g=g, k=k) + "\n" for k, g in enumerate(gs))

    step = (each("zi{g} = zr{g}.Add(zr{g}).Mul(zi{g}).Add(civ)", "\t\t")
            + each("zr{g} = zr2{g}.Sub(zi2{g}).Add(cr{g})", "\t\t")
            + each("zr2{g}, zi2{g} = zr{g}.Mul(zr{g}), zi{g}.Mul(zi{g})", "\t\t")
            + each("r2{g} := zr2{g}.Add(zi2{g})", "\t\t"))
    record = each("res{g}, rr{g} = j.Merge(res{g}, now{g}), r2{g}.Merge(rr{g}, now{g})", "\t\t")
    running = ".Or(".join(f"res{g}.Less(zero)" for g in gs) + ")" * (G - 1)
    running2 = ".Or(".join(f"res{g}.Less(zero).And(nesc{g}.Less(inf))" for g in gs) + ")" * (G - 1)
    inbits = "|".join(f"uint64(in{g}.ToBits())" + (f"<<{k * w}" if k else "") for k, g in enumerate(gs))
    if G > 1:
        inbits = f"({inbits})"
    crs = "".join(f"\tcr{g} := idx" + (f".Add(archsimd.Broadcast{t}({k * w}))" if k else "") + ".Mul(step).Add(x0)\n"
                  for k, g in enumerate(gs))
    return f"""// flatGroups{w} is how many {w}-lane vectors flat{w} runs side by side.
const flatGroups{w} = {G}

// flat{w} is flatRow's kernel with {w}-lane vectors: it iterates the {n}
// consecutive pixels of the row from px on as {G} vectors, every lane to
// the row's max_iter (which must be <= maxExtra) without refill and without
// the periodicity check, an escaped lane on past radius 256 as escapeValue
// does, and writes their smooth values to f.dst (lanes past its end are
// computed and dropped). Same values as the scalar kernel: the
// cardioid/bulb lanes are Inside (the same test), an orbit that cycles
// never escapes, so brute force finds it Inside too, and an escaped lane
// does iterate's and escapeValue's operations in their order.
func flat{w}(f *flatRow, px int) {{
	one := archsimd.Broadcast{t}(1)
	zero := archsimd.Broadcast{t}(0)
	inf := archsimd.Broadcast{t}(math.Inf(1))
	four := archsimd.Broadcast{t}(escape2)
	big := archsimd.Broadcast{t}(bailout2)
	civ := archsimd.Broadcast{t}(f.ci)
	step := archsimd.Broadcast{t}(f.step)
	x0 := archsimd.Broadcast{t}(f.x0)
	// pixel indices as floats (exact below 2^53, like coordRe's)
	idx := archsimd.Load{t}Slice(iota8[:]).Add(archsimd.Broadcast{t}(float64(f.ox + px)))
{crs}{each("in{g} := f.cheapInside" + str(w) + "(cr{g})")}	valid := uint64(1)<<min({n}, len(f.dst)-px) - 1
	if {inbits}&valid == valid {{
		for i := px; i < min(px+{n}, len(f.dst)); i++ {{
			f.dst[i] = Inside
		}}
		return
	}}
	// nesc: the iteration at which |z|² first passed 4 (inf: not yet);
	// res, rr: the iterations and |z|² at radius 256 (res < 0: not yet).
{each("zr{g}, zi{g}, zr2{g}, zi2{g} := zero, zero, zero, zero")}{each("nesc{g}, res{g}, rr{g} := inf, archsimd.Broadcast" + t + "(-1), zero")}	j := zero
	for range f.maxIter {{
		j = j.Add(one)
{step}{each("nesc{g} = nesc{g}.Min(j.Merge(inf, r2{g}.Greater(four)))", chr(9)*2)}		// j - nesc < maxExtra here: max_iter <= maxExtra
{each("now{g} := r2{g}.Greater(big).And(res{g}.Less(zero))", chr(9)*2)}{record}		if {running}.ToBits() == 0 {{
			break
		}}
	}}
	// past max_iter: no new escapes; the escaped lanes go on to radius 256
	extra := archsimd.Broadcast{t}(maxExtra)
	for {running2}.ToBits() != 0 {{
		j = j.Add(one)
{step}{each("now{g} := r2{g}.Greater(big).Or(j.Sub(nesc{g}).GreaterEqual(extra)).And(res{g}.Less(zero))", chr(9)*2)}{record}	}}
{each("out{g} := f.smooth" + str(w) + "(res{g}, rr{g}, in{g}.Or(nesc{g}.Equal(inf)))")}	if px+{n} <= len(f.dst) {{
{"".join(f"{chr(9)*2}out{g}.StoreSlice(f.dst[px" + (f"+{k * w}" if k else "") + ":])" + chr(10) for k, g in enumerate(gs))}		return
	}}
{"".join(f"{chr(9)}out{g}.StoreSlice(f.out[" + (f"{k * w}" if k else "") + ":])" + chr(10) for k, g in enumerate(gs))}	copy(f.dst[px:], f.out[:])
}}

// cheapInside{w} is cheapInside of {w} lanes at imaginary part f.ci, the
// same operations.
func (f *flatRow) cheapInside{w}(cr archsimd.{t}) archsimd.{m} {{
	ci2 := float64(f.ci * f.ci)
	civ2 := archsimd.Broadcast{t}(ci2)
	xq := cr.Sub(archsimd.Broadcast{t}(0.25))
	q := xq.Mul(xq).Add(civ2)
	in := q.Mul(q.Add(xq)).LessEqual(archsimd.Broadcast{t}(float64(0.25 * ci2)))
	xb := cr.Add(archsimd.Broadcast{t}(1))
	return in.Or(xb.Mul(xb).Add(civ2).LessEqual(archsimd.Broadcast{t}(1.0 / 16)))
}}

// smooth{w} is smoothValue of {w} lanes that passed radius 256 after n
// iterations with |z|² = r2, as float32, and Inside where inside is set.
func (f *flatRow) smooth{w}(n, r2 archsimd.{t}, inside archsimd.{m}) archsimd.Float32x{w} {{
	zero := archsimd.Broadcast{t}(0)
	l := vlog2x{w}(vlog2x{w}(r2, &f.fb).Mul(archsimd.Broadcast{t}(math.Ln2/2)), &f.fb)
	nu := n.Add(archsimd.Broadcast{t}(1)).Sub(l)
	nu = nu.Merge(zero, nu.GreaterEqual(zero))
	nu = zero.Merge(nu, r2.Greater(archsimd.Broadcast{t}(math.MaxFloat64)))
	return archsimd.Broadcast{t}(float64(Inside)).Merge(nu, inside).ConvertToFloat32()
}}
"""

# Vectors in flight in flat8 and flat4 (arguments 1 and 2 override them,
# for experiments). Seed view, one worker, AVX-512: flat8 with 1 vector
# 3.87-4.02 ms, 2 vectors 4.0-4.2 ms, 3 5.0-6.0 ms, 4 5.8-7.0 ms; flat4
# (run on the same CPU) 4.3-4.8 ms with 1, 4.6-5.3 ms with 2. Consecutive
# pixels in one vector wait for the slowest of them: more lanes, more of
# that waste than the latency they hide.
FLAT_GROUPS8 = int(sys.argv[1]) if len(sys.argv) > 1 else 1
FLAT_GROUPS4 = int(sys.argv[2]) if len(sys.argv) > 2 else 2

HEADER = f"""// Code generated by gen_kernel.py; DO NOT EDIT.

//go:build goexperiment.simd && amd64

package mandel

import (
	"math"
	"math/bits"
	"simd/archsimd"
)

// groups is the number of independent vectors in flight.
const groups = {len(GROUPS)}

"""

HEADER += "var iota8 = [8]float64{0, 1, 2, 3, 4, 5, 6, 7}\n\n"
sys.stdout.write(HEADER + gen(8) + "\n" + gen(4) + "\n" + gen_flat(8, FLAT_GROUPS8) + "\n" + gen_flat(4, FLAT_GROUPS4))
