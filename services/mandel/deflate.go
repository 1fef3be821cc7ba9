package mandel

import (
	"encoding/binary"
	"math/bits"
	"slices"
)

// runDeflater is a deflate (RFC 1951) encoder made for AppendBand's
// filtered scanlines. Up-filtered rows of a rendered frame are mostly
// zeros (81% of the seed view's bytes, 44% of the bench's 4K frame), in
// runs, and their other bytes are small differences (+-1 above all). So
// the only matches it looks for are runs of one repeated byte, found 64
// bytes at a time without a branch on each byte: the first byte of a run
// is a literal and the rest a match at distance 1. Everything else is a
// literal; a dynamic Huffman code built for each block from its counts
// makes the frequent ones short. klauspost/compress's flate at BestSpeed,
// which AppendBand used before, searches a hash table for repeats of any
// bytes: on the seed view's bands this encoder took 1.9 ms against 2.3
// (BenchmarkAppendBand, with the filter and Adler-32) for 104 KiB against
// 111; on the bench's 4K frame, whose rows are busier, 130 ms against
// 120 for 13.1 MiB against 12.6. Through the master the seed view's slaves
// used 10-20% less CPU per frame. (With the AVX-512 scan and filter since:
// 1.3 ms and 116-121 ms.)
//
// Use: reset, write the bytes (any number of calls), finish: the stream
// ends with a sync flush and no final block, as AppendBand promises.
type runDeflater struct {
	bw bitWriter
	// The current block, as events: a match (of length 3..258, or 0 for
	// none) then a literal (or none: noLiteral).
	evs  [evMask + 1]uint32
	nevs int
	// hist counts a block's literals (0..511) and match lengths (512...).
	hist [4][1024]uint32

	n        int    // bytes written to the stream
	lastByte byte   // the stream's last byte
	last     byte   // the last literal,
	lastPos  int    // at this position (-1: none yet); the bytes after it are equal to it
	s1, s2   uint64 // the Adler-32 of the bytes written (adler32)

	// Scratch space for the Huffman codes of a block.
	litLen     [litLenCodes]uint8
	litCode    [litLenCodes]uint16
	clLen      [19]uint8
	clCode     [19]uint16
	litTable   [512]uint32 // each literal's bits, with their count in the top byte
	matchTable [512]uint32 // each match's: its length's code and extra bits, its distance's
	huff       huffScratch
	lengths    []uint8 // the code lengths of the literal/length and distance codes, in a row
	clSyms     []uint16
}

// An event is a match length in its low 16 bits (0: no match) and a
// literal (0..255, or noLiteral) above: what the bytes up to and
// including a byte that differs from the one before become.
func event(match int, lit uint32) uint32 { return uint32(match) | lit<<16 }

const (
	noLiteral = 256
	minMatch  = 3
	maxMatch  = 258
	// litLenCodes is the size of deflate's literal/length alphabet: 256
	// literals, end of block (256), 29 length codes.
	litLenCodes = 286
	endOfBlock  = 256
	// maxBlockEvents bounds a block: its Huffman code adapts to the
	// statistics of at most that many events, and the buffer stays
	// small. A block's header is 60-100 bytes.
	maxBlockEvents = 1 << 15
	// evMask+1 is the size of the event buffer, a power of 2 beyond
	// maxBlockEvents plus the events of 64 bytes: write checks for a
	// full block once every 64 bytes.
	evMask = 1<<16 - 1
)

// Deflate's length codes (RFC 1951, 3.2.5): code 257+i stands for lengths
// lengthBase[i] .. lengthBase[i] + 2^lengthExtra[i] - 1.
var (
	lengthBase  = [29]uint16{3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258}
	lengthExtra = [29]uint8{0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0}
	// lengthCode[l] is the index i of match length l's code.
	lengthCode = func() (lc [maxMatch + 1]uint8) {
		for l := minMatch; l <= maxMatch; l++ {
			i := 0
			for i+1 < len(lengthBase) && int(lengthBase[i+1]) <= l {
				i++
			}
			lc[l] = uint8(i)
		}
		return lc
	}()
	// clOrder is the order in which the code length code's lengths are sent.
	clOrder = [19]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}
)

// reset starts a new stream appended to dst.
func (d *runDeflater) reset(dst []byte) {
	d.bw = bitWriter{out: dst}
	d.nevs = 0
	d.n, d.lastPos = 0, -1
	d.s1, d.s2 = 1, 0
}

// adler32 returns the Adler-32 (RFC 1950) of the bytes written since
// reset: the zlib stream's checksum, computed as they are scanned.
func (d *runDeflater) adler32() uint32 { return uint32(d.s2<<16 | d.s1) }

// write adds p to the stream.
func (d *runDeflater) write(p []byte) {
	if len(p) == 0 {
		return
	}
	if d.lastPos < 0 { // the stream's first byte: a literal
		d.evs[0] = event(0, uint32(p[0]))
		d.nevs, d.last, d.lastPos, d.lastByte = 1, p[0], 0, p[0]
	}
	// The state is kept in locals in the loop: stores to d.evs would make
	// the compiler reload fields of d after each.
	evs := &d.evs
	n, last, lastPos := d.nevs, uint32(d.last), d.lastPos-d.n // positions in p
	prev := d.lastByte
	// 64 bytes at a time: a mask of those that differ from the byte
	// before is made without a branch on each byte (scan64, or with
	// AVX-512 scan64Vec: on the seed view's bands it took AppendBand
	// from 1.54-1.81 ms to 1.35-1.47), and only its set bits are
	// visited. Each is a literal; the bytes between two literals repeat
	// the first one.
	s1, s2 := d.s1, d.s2
	for i := 0; i < len(p); i += 64 {
		var m, sum, wsum uint64
		r := min(64, len(p)-i)
		if r == 64 && i > 0 && hasAVX512 {
			m, sum, wsum = scan64Vec(p, i)
		} else if r == 64 {
			m, sum, wsum = scan64(p[i:i+64], prev)
		} else { // the last 1..63 bytes, and zeros
			var tail [64]byte
			copy(tail[:], p[i:])
			m, sum, wsum = scan64(tail[:], prev)
			m &= 1<<r - 1
		}
		prev = p[i+r-1]
		// Adler-32 (RFC 1950) of the r bytes b_k: s1 += sum of b_k,
		// s2 += r*s1 + sum of (r-k)*b_k, modulo 65521.
		s2 = (s2 + uint64(r)*(s1+sum) - wsum) % 65521
		s1 = (s1 + sum) % 65521
		if m == 0 {
			continue
		}
		if n >= maxBlockEvents {
			d.nevs = n
			d.block()
			n = 0
		}
		for ; m != 0; m &= m - 1 {
			pos := i + bits.TrailingZeros64(m)
			gap := pos - lastPos - 1
			lastPos = pos
			if gap > maxMatch {
				d.nevs = n
				gap = d.longRun(gap)
				n = d.nevs
			}
			// A run of 3 or more copies of the last literal is a match
			// at distance 1 (the byte before is the run's byte), a
			// shorter one 1 or 2 literals, events of their own. Without
			// branches: they would be unpredictable where runs are short.
			// (The masks of indexes spare the compiler's bounds checks.)
			evs[n&evMask] = last << 16
			evs[(n+1)&evMask] = last << 16
			match, adv := 0, gap
			if gap >= minMatch {
				match, adv = gap, 0
			}
			n += adv
			last = uint32(p[pos])
			evs[n&evMask] = event(match, last)
			n++
		}
	}
	d.nevs, d.last, d.lastPos = n, byte(last), d.n+lastPos
	d.s1, d.s2 = s1, s2
	d.n += len(p)
	d.lastByte = p[len(p)-1]
}

// scan64 returns for 64 bytes c (the one before them is prev): a mask of
// those that differ from the byte before (bit k for c[k]), the sum of the
// bytes and the sum of k*c[k] (for Adler-32). 8 bytes at a time (SWAR),
// without a branch on each byte.
func scan64(c []byte, prev byte) (mask, sum, wsum uint64) {
	const (
		lo7, hi = 0x7f7f7f7f7f7f7f7f, 0x8080808080808080
		evens   = 0x00ff00ff00ff00ff
		// Multiplied by 4 16-bit lanes x_0..x_3, these leave in the top
		// lane x_0+x_1+x_2+x_3 and 0*x_0+1*x_1+2*x_2+3*x_3 (the products
		// meet at bit 48; no lane below carries: each holds at most 510).
		sumLanes, rampLanes = 0x0001000100010001, 0x0000000100020003
	)
	for j := range 8 {
		w := binary.LittleEndian.Uint64(c[8*j:])
		// A byte differs from the one before where w xor (w shifted by
		// one byte) is not 0: its top bit is set then, and the 8 top
		// bits are gathered into the top byte (the multiplier puts bit
		// 8i+7 at bit 56+i; no two partial products overlap).
		x := w ^ (w<<8 | uint64(prev))
		x = ((x&lo7 + lo7) | x) & hi
		mask |= (x >> 7) * 0x0102040810204080 >> 56 << (8 * j)
		prev = byte(w >> 56)
		// The bytes b_0..b_7 of w: the 4 lanes of pairs e_i + o_i
		// (b_2i + b_2i+1) give the sum and sum of i*(e_i + o_i); the
		// sum of i*b_i is twice that plus the odd bytes' sum.
		o := w >> 8 & evens
		pairs := w&evens + o
		s := pairs * sumLanes >> 48
		ramp := 2*(pairs*rampLanes>>48) + (o * sumLanes >> 48)
		sum += s
		wsum += uint64(8*j)*s + ramp
	}
	return mask, sum, wsum
}

// longRun adds the events of a run of gap > maxMatch copies of the last
// literal but the last 1..maxMatch of them, whose number it returns.
func (d *runDeflater) longRun(gap int) int {
	for gap > maxMatch {
		if d.nevs >= maxBlockEvents {
			d.block()
		}
		d.evs[d.nevs] = event(maxMatch, noLiteral)
		d.nevs++
		gap -= maxMatch
	}
	return gap
}

// finish ends the stream with what is pending and a sync flush (an empty
// stored block: the stream is byte-aligned and ends 00 00 ff ff) and
// returns it.
func (d *runDeflater) finish() []byte {
	if d.lastPos >= 0 { // the run after the last literal
		gap := d.n - 1 - d.lastPos
		if gap > maxMatch {
			gap = d.longRun(gap)
		}
		if gap >= minMatch {
			d.evs[d.nevs] = event(gap, noLiteral)
			d.nevs++
		} else {
			for range gap {
				d.evs[d.nevs] = event(0, uint32(d.last))
				d.nevs++
			}
		}
	}
	if d.nevs > 0 {
		d.block()
	}
	d.bw.writeBits(0, 3) // not final, stored
	d.bw.alignByte()
	d.bw.out = append(d.bw.out, 0, 0, 0xff, 0xff)
	return d.bw.out
}

// block writes the events so far as one block with dynamic Huffman codes
// (not final) and starts the next block.
func (d *runDeflater) block() {
	evs := d.evs[:d.nevs]
	// The counts go to 4 histograms in turn: most events are the same
	// few (no match, a literal 0, +1 or -1), and incrementing one counter
	// again and again waits for each store to land.
	h := &d.hist
	*h = [4][1024]uint32{}
	e := evs
	for ; len(e) >= 4; e = e[4:] {
		for k := range 4 {
			h[k][e[k]>>16&0x1ff]++
			h[k][512+e[k]&0x1ff]++
		}
	}
	for _, e := range e {
		h[0][e>>16&0x1ff]++
		h[0][512+e&0x1ff]++
	}
	var freq [litLenCodes]uint32
	for t := range 256 {
		freq[t] = h[0][t] + h[1][t] + h[2][t] + h[3][t]
	}
	freq[endOfBlock] = 1
	for l := minMatch; l <= maxMatch; l++ {
		freq[257+int(lengthCode[l])] += h[0][512+l] + h[1][512+l] + h[2][512+l] + h[3][512+l]
	}
	huffmanLengths(d.litLen[:], freq[:], 15, &d.huff)
	canonicalCodes(d.litCode[:], d.litLen[:])
	nlit := litLenCodes
	for d.litLen[nlit-1] == 0 {
		nlit--
	}
	// Every match is at distance 1, distance code 0. Codes 0 and 1 of
	// length 1 make a complete code (a lone code of length 1 is allowed
	// by RFC 1951 but not every decoder likes it): code 0 is the bit 0.
	const ndist = 2
	d.lengths = append(append(d.lengths[:0], d.litLen[:nlit]...), 1, 1)
	d.writeHeader(nlit, ndist)

	// The bits of each literal and match, written at once: a literal's
	// code, or a length's code, its extra bits and the distance's single
	// 0 bit. Match 0 and noLiteral are nothing.
	for t := range 256 {
		d.litTable[t] = uint32(d.litCode[t]) | uint32(d.litLen[t])<<24
	}
	for l := minMatch; l <= maxMatch; l++ {
		i := lengthCode[l]
		n, extra := uint32(d.litLen[257+int(i)]), uint32(lengthExtra[i])
		code := uint32(d.litCode[257+int(i)]) | (uint32(l)-uint32(lengthBase[i]))<<n
		d.matchTable[l] = code | (n+extra+1)<<24
	}
	d.bw.writeEvents(evs, &d.litTable, &d.matchTable)
	d.bw.writeBits(uint64(d.litCode[endOfBlock]), uint(d.litLen[endOfBlock]))
	d.nevs = 0
}

// writeHeader writes a dynamic block's header for the code lengths in
// d.lengths (nlit literal/length codes, then ndist distance codes): they
// are sent run-length coded (symbols 16, 17, 18) with a Huffman code of
// their own.
func (d *runDeflater) writeHeader(nlit, ndist int) {
	// The run-length coding, as symbols with their repeat count in the
	// upper bits (sym | count << 8).
	syms := d.clSyms[:0]
	var freq [19]uint32
	add := func(sym, count int) {
		syms = append(syms, uint16(sym|count<<8))
		freq[sym]++
	}
	ls := d.lengths
	for i := 0; i < len(ls); {
		l := ls[i]
		n := 1
		for i+n < len(ls) && ls[i+n] == l {
			n++
		}
		i += n
		if l == 0 {
			for n >= 11 {
				k := min(n, 138)
				add(18, k)
				n -= k
			}
			if n >= 3 {
				add(17, n)
				n = 0
			}
		} else {
			add(int(l), 0)
			n--
			for n >= 3 {
				k := min(n, 6)
				add(16, k)
				n -= k
			}
		}
		for ; n > 0; n-- {
			add(int(l), 0)
		}
	}
	d.clSyms = syms

	huffmanLengths(d.clLen[:], freq[:], 7, &d.huff)
	canonicalCodes(d.clCode[:], d.clLen[:])
	ncl := len(clOrder)
	for ncl > 4 && d.clLen[clOrder[ncl-1]] == 0 { // at least 4 are sent
		ncl--
	}
	bw := &d.bw
	bw.writeBits(2<<1, 3) // not final, dynamic Huffman codes
	bw.writeBits(uint64(nlit-257), 5)
	bw.writeBits(uint64(ndist-1), 5)
	bw.writeBits(uint64(ncl-4), 4)
	for _, s := range clOrder[:ncl] {
		bw.writeBits(uint64(d.clLen[s]), 3)
	}
	for _, s := range syms {
		sym, count := s&0xff, uint64(s>>8)
		bw.writeBits(uint64(d.clCode[sym]), uint(d.clLen[sym]))
		switch sym {
		case 16:
			bw.writeBits(count-3, 2)
		case 17:
			bw.writeBits(count-3, 3)
		case 18:
			bw.writeBits(count-11, 7)
		}
	}
}

// huffScratch is huffmanLengths' working space.
type huffScratch struct {
	syms   []uint64 // freq << 16 | symbol, sorted
	depth  []int32
	counts [litLenCodes]int32 // codes of each length (a code is shorter than the symbols)
}

// huffmanLengths sets lengths[s] to the length of symbol s's code in a
// Huffman code for the frequencies freq, none longer than maxBits, 0 for
// unused symbols. A code always has at least two symbols (a lone used
// symbol gets a partner), so it is complete, as strict decoders want.
func huffmanLengths(lengths []uint8, freq []uint32, maxBits int, h *huffScratch) {
	clear(lengths)
	syms := h.syms[:0]
	for s, f := range freq {
		if f > 0 {
			syms = append(syms, uint64(f)<<16|uint64(s))
		}
	}
	for s := 0; len(syms) < 2; s++ {
		if freq[s] == 0 {
			syms = append(syms, 1<<16|uint64(s))
		}
	}
	slices.Sort(syms)
	h.syms = syms
	n := len(syms)

	// Moffat and Katajainen's in-place computation of minimum-redundancy
	// code lengths ("In-place calculation of minimum-redundancy codes",
	// 1995), on the frequencies sorted in increasing order. The first pass
	// builds the tree (parent pointers), the second gives internal nodes
	// their depths, the third leaves theirs: a[i] becomes the length of
	// the i-th least frequent symbol's code.
	a := h.depth[:0]
	for _, s := range syms {
		a = append(a, int32(s>>16))
	}
	h.depth = a
	a[0] += a[1]
	root, leaf := 0, 2
	for next := 1; next < n-1; next++ {
		if leaf >= n || a[root] < a[leaf] {
			a[next] = a[root]
			a[root] = int32(next)
			root++
		} else {
			a[next] = a[leaf]
			leaf++
		}
		if leaf >= n || (root < next && a[root] < a[leaf]) {
			a[next] += a[root]
			a[root] = int32(next)
			root++
		} else {
			a[next] += a[leaf]
			leaf++
		}
	}
	a[n-2] = 0
	for next := n - 3; next >= 0; next-- {
		a[next] = a[a[next]] + 1
	}
	avail, used, depth := 1, 0, int32(0)
	root, next := n-2, n-1
	for avail > 0 {
		for root >= 0 && a[root] == depth {
			used++
			root--
		}
		for avail > used {
			a[next] = depth
			next--
			avail--
		}
		avail, used = 2*used, 0
		depth++
	}

	// Limit the lengths to maxBits the way JPEG does (ITU T.81, K.3):
	// while a length is too long, two codes of it become one a bit
	// shorter and two below the longest shorter code (which lengthens by
	// one); the code stays complete. The lengths are then handed out
	// again, the shortest to the most frequent symbols.
	counts := &h.counts
	*counts = [litLenCodes]int32{}
	longest := 0
	for _, l := range a {
		counts[l]++
		longest = max(longest, int(l))
	}
	for l := longest; l > maxBits; l-- {
		for counts[l] > 0 {
			j := l - 2
			for counts[j] == 0 {
				j--
			}
			counts[l] -= 2
			counts[l-1]++
			counts[j+1] += 2
			counts[j]--
		}
	}
	i := 0
	for l := min(longest, maxBits); l > 0; l-- {
		for range counts[l] {
			lengths[syms[i]&0xffff] = uint8(l)
			i++
		}
	}
}

// canonicalCodes sets codes to deflate's canonical Huffman code for the
// lengths (RFC 1951, 3.2.2), bit-reversed: deflate sends Huffman codes
// from their most significant bit, into a stream filled from the least.
func canonicalCodes(codes []uint16, lengths []uint8) {
	var count, next [16]uint16
	for _, l := range lengths {
		count[l]++
	}
	count[0] = 0
	code := uint16(0)
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	for s, l := range lengths {
		if l == 0 {
			codes[s] = 0
			continue
		}
		codes[s] = bits.Reverse16(next[l]) >> (16 - l)
		next[l]++
	}
}

// bitWriter appends bits to out, least significant first (deflate's order).
type bitWriter struct {
	out  []byte
	bits uint64 // pending bits, fewer than 32
	n    uint
}

// writeBits writes the n low bits of b (n <= 32, no bits above them).
func (w *bitWriter) writeBits(b uint64, n uint) {
	w.bits |= b << w.n
	w.n += n
	if w.n >= 32 {
		w.out = binary.LittleEndian.AppendUint32(w.out, uint32(w.bits))
		w.bits >>= 32
		w.n -= 32
	}
}

// writeEvents writes the codes of the events from the tables (their
// bits, with their count in the top byte: at most 21 for a match, 15 for
// a literal). Without a branch on each: an event's bits go into the
// pending bits, all 8 bytes of which are stored, and the whole bytes
// among them are kept; the buffer is grown once for the longest possible
// output first. (The masks of indexes and shift counts spare the
// compiler's bounds and shift checks.)
func (w *bitWriter) writeEvents(evs []uint32, lits, matches *[512]uint32) {
	w.alignPending()
	pos := len(w.out)
	w.out = slices.Grow(w.out, 5*len(evs)+8)
	buf := w.out[:cap(w.out)]
	bits, n := w.bits, w.n // n < 8
	for _, e := range evs {
		m, l := matches[e&0x1ff], lits[e>>16&0x1ff]
		mn := m >> 24
		bits |= (uint64(m&0xffffff) | uint64(l&0xffffff)<<(mn&63)) << (n & 63) // at most 7+21+15 bits
		n += uint(mn + l>>24)
		binary.LittleEndian.PutUint64(buf[pos:], bits)
		pos += int(n >> 3)
		bits >>= n & 56
		n &= 7
	}
	w.out, w.bits, w.n = buf[:pos], bits, n
}

// alignPending moves the whole bytes of the pending bits to out.
func (w *bitWriter) alignPending() {
	for w.n >= 8 {
		w.out = append(w.out, byte(w.bits))
		w.bits >>= 8
		w.n -= 8
	}
}

// alignByte writes the pending bits, padded with zeros to a whole byte.
func (w *bitWriter) alignByte() {
	w.alignPending()
	if w.n > 0 {
		w.out = append(w.out, byte(w.bits))
	}
	w.bits, w.n = 0, 0
}
