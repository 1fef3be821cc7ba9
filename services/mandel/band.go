package mandel

import (
	"encoding/binary"
	"io"
	"sync"
)

// A frame's PNG can be made of bands of whole rows compressed where they
// were rendered (AppendBand, on a slave) and joined in order without
// decompressing them (BandWriter, on the master). The zlib stream of a PNG
// is one deflate stream, but deflate streams that end with a sync flush
// (a non-final block, byte-aligned) can be concatenated, and the zlib
// trailer's Adler-32 of the whole is computed from the bands' own
// (adler32Combine). Each band is compressed on its own, so its first row
// cannot use the Up filter over the band above: it uses Sub. The pixels
// are those of EncodePNG; the bytes differ (another deflate encoder,
// runDeflater, one Sub row and a fresh window per band).

// bandEncoder is AppendBand's reusable state.
type bandEncoder struct {
	d    runDeflater
	line []byte // a filtered scanline
}

var bandEncoders = sync.Pool{New: func() any { return new(bandEncoder) }}

// AppendBand appends to dst the PNG image data of a band of height rows of
// width opaque pixels (pix: RGBA, 4*width*height bytes; alpha is not used):
// a 4-byte big-endian Adler-32 of the band's filtered scanlines, then the
// scanlines compressed as raw deflate ending with a sync flush. BandWriter
// joins such bands into a PNG. The deflate encoder is runDeflater, made
// for such rows.
func AppendBand(dst, pix []byte, width, height int) ([]byte, error) {
	if width <= 0 || height <= 0 || len(pix) != 4*width*height {
		return dst, invalid("band", "%d bytes for a band of %dx%d RGBA pixels", len(pix), width, height)
	}
	start := len(dst)
	e := bandEncoders.Get().(*bandEncoder)
	defer bandEncoders.Put(e)
	e.d.reset(append(dst, 0, 0, 0, 0))
	if cap(e.line) < 1+3*width+2 {
		e.line = make([]byte, 1+3*width+2) // + 2 spare bytes for upRGB
	}
	line := e.line[:1+3*width+2]
	scan := line[:1+3*width]
	stride := 4 * width
	for y := range height {
		row := pix[y*stride : (y+1)*stride]
		if y == 0 {
			line[0] = 1 // Sub: the band above is not here
			subRGB(line[1:], row)
		} else {
			line[0] = 2 // Up
			upRGB(line[1:], row, pix[(y-1)*stride:y*stride])
		}
		e.d.write(scan)
	}
	out := e.d.finish()
	binary.BigEndian.PutUint32(out[start:], e.d.adler32())
	e.d.bw.out = nil // the caller's now
	return out, nil
}

// subRGB writes the PNG "Sub" filter of an RGBA row as RGB bytes to line:
// line[3x+c] = row[4x+c] - row[4x-4+c] mod 256 (0 left of the first pixel).
func subRGB(line, row []byte) {
	var pr, pg, pb byte
	for x := range len(row) / 4 {
		r, g, b := row[4*x], row[4*x+1], row[4*x+2]
		line[3*x], line[3*x+1], line[3*x+2] = r-pr, g-pg, b-pb
		pr, pg, pb = r, g, b
	}
}

// zlibHeader starts the zlib stream of a PNG joined from bands (deflate,
// 32 KiB window, no dictionary, "fastest" level hint; the check bits make
// it a multiple of 31).
var zlibHeader = []byte{0x78, 0x01}

// BandWriter writes a PNG from bands that AppendBand encoded, top to
// bottom: the bytes of each band go out as an IDAT chunk as soon as it is
// written, nothing is decompressed or kept.
type BandWriter struct {
	w             io.Writer
	width, height int
	y             int    // rows written
	adler         uint32 // Adler-32 of the scanlines so far
}

// NewBandWriter writes the PNG header of a width x height opaque picture
// (RGB, 8 bits) whose image data follows in bands (WriteBand).
func NewBandWriter(w io.Writer, width, height int) (*BandWriter, error) {
	if err := writeHeader(w, width, height); err != nil {
		return nil, err
	}
	return &BandWriter{w: w, width: width, height: height, adler: 1}, nil
}

// WriteBand writes the next band, of rows rows, as AppendBand returned it.
func (b *BandWriter) WriteBand(band []byte, rows int) error {
	if rows <= 0 || b.y+rows > b.height {
		return invalid("rows", "a band of %d rows after %d of a picture %d rows high", rows, b.y, b.height)
	}
	if len(band) < 4+5 { // the Adler-32 and at least the sync flush's empty block
		return invalid("band", "a band of %d bytes is too short", len(band))
	}
	b.adler = adler32Combine(b.adler, binary.BigEndian.Uint32(band), int64(rows)*int64(1+3*b.width))
	var err error
	if b.y == 0 {
		err = writeChunk(b.w, "IDAT", zlibHeader, band[4:])
	} else {
		err = writeChunk(b.w, "IDAT", band[4:])
	}
	b.y += rows
	return err
}

// Close ends the zlib stream (an empty final block and the Adler-32) and
// the PNG; every row must have been written.
func (b *BandWriter) Close() error {
	if b.y != b.height {
		return invalid("rows", "closed after %d of %d rows", b.y, b.height)
	}
	// 0x03 0x00: a final block with fixed Huffman codes holding only its
	// end-of-block code.
	tail := []byte{0x03, 0x00, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(tail[2:], b.adler)
	if err := writeChunk(b.w, "IDAT", tail); err != nil {
		return err
	}
	return writeChunk(b.w, "IEND", nil)
}

// adler32Combine returns the Adler-32 of A followed by B from a1 of A, a2
// of B and B's length (zlib's adler32_combine).
func adler32Combine(a1, a2 uint32, len2 int64) uint32 {
	const mod = 65521
	rem := uint64(len2 % mod)
	s1 := uint64(a1 & 0xffff)
	s2 := rem * s1 % mod
	s1 += uint64(a2&0xffff) + mod - 1
	s2 += uint64(a1>>16) + uint64(a2>>16) + mod - rem
	s1 %= mod
	s2 %= mod
	return uint32(s2<<16 | s1)
}
