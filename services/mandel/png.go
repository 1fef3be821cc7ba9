package mandel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/draw"
	"image/png"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
)

// PNGCompression is the zlib level EncodePNG uses. BestSpeed was measured
// several times faster than DefaultCompression on rendered frames for
// files only modestly larger (see BenchmarkEncodePNG).
const PNGCompression = png.BestSpeed

// bufferPool lets concurrent encodes of non-opaque images reuse the
// standard encoder's scratch buffers and zlib state.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() *png.EncoderBuffer {
	e, _ := b.p.Get().(*png.EncoderBuffer)
	return e // nil makes the encoder allocate a new one
}

func (b *bufferPool) Put(e *png.EncoderBuffer) { b.p.Put(e) }

var pngEncoder = newPNGEncoder(PNGCompression)

func newPNGEncoder(level png.CompressionLevel) *png.Encoder {
	return &png.Encoder{CompressionLevel: level, BufferPool: &bufferPool{}}
}

// EncodePNG writes img as PNG. It is safe for concurrent use.
//
// An opaque *image.RGBA (every rendered tile and frame) takes a fast path:
// 8-bit RGB with the "Up" filter on every row and BestSpeed zlib (from
// github.com/klauspost/compress, see zlibPool). The
// standard encoder tries all five filters on every row to pick one, which
// measured 2-3x slower on rendered frames for files of about the same size;
// rendered rows repeat the row above almost everywhere, which is what Up
// removes. Anything else goes to image/png.
func EncodePNG(w io.Writer, img image.Image) error {
	if m, ok := img.(*image.RGBA); ok && m.Opaque() {
		return encodeRGBUp(w, m)
	}
	return pngEncoder.Encode(w, img)
}

// DecodePNG decodes a PNG (one EncodePNG wrote, say) into an *image.RGBA
// whose bounds start at (0, 0): the form renders have, so that pictures
// can be compared pixel by pixel (bytes.Equal of the Pix).
func DecodePNG(data []byte) (*image.RGBA, error) {
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	if rgba, ok := img.(*image.RGBA); ok && rgba.Rect.Min == (image.Point{}) {
		return rgba, nil
	}
	out := image.NewRGBA(image.Rect(0, 0, img.Bounds().Dx(), img.Bounds().Dy()))
	draw.Draw(out, out.Bounds(), img, img.Bounds().Min, draw.Src)
	return out, nil
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// zlibPool reuses zlib writers (their flate state is ~1 MB). They are
// github.com/klauspost/compress's at level 1 (BestSpeed), not
// compress/zlib's: on rendered frames (Up-filtered RGB rows) it measured
// 38% faster on the 3840x2160 bench frame (211 vs 340 ms, 12.5 vs 12.7 MiB)
// and 19% on the seed's 500x500 view (4.4 vs 5.4 ms, 110 vs 112 KiB).
// Huffman-only was faster still (163 ms) but 11% larger; level 6 several
// times slower for 10% smaller files; the Sub filter or none made no real
// difference. See docs/benchmarks.md.
var zlibPool = sync.Pool{New: func() any {
	zw, _ := zlib.NewWriterLevel(io.Discard, zlib.BestSpeed)
	return zw
}}

// chunkWriter turns the zlib stream into IDAT chunks.
type chunkWriter struct {
	w   io.Writer
	err error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	if c.err == nil {
		c.err = writeChunk(c.w, "IDAT", p)
	}
	if c.err != nil {
		return 0, c.err
	}
	return len(p), nil
}

// writeChunk writes a PNG chunk whose data is the parts, one after the other.
func writeChunk(w io.Writer, typ string, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(n))
	copy(hdr[4:], typ)
	crc := crc32.NewIEEE()
	crc.Write(hdr[4:8])
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range parts {
		crc.Write(p)
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	var tail [4]byte
	binary.BigEndian.PutUint32(tail[:], crc.Sum32())
	_, err := w.Write(tail[:])
	return err
}

func encodeRGBUp(w io.Writer, m *image.RGBA) error {
	b := m.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return pngEncoder.Encode(w, m)
	}
	e, err := NewRowEncoder(w, m)
	if err != nil {
		return err
	}
	if err := e.Rows(b.Dy()); err != nil {
		return err
	}
	return e.Close()
}

// writeHeader writes the PNG signature and the IHDR chunk of a width x
// height 8-bit RGB picture.
func writeHeader(w io.Writer, width, height int) error {
	if width <= 0 || height <= 0 {
		return invalid("image", "cannot stream an empty %dx%d image", width, height)
	}
	if _, err := w.Write(pngSignature); err != nil {
		return err
	}
	var ihdr [13]byte
	binary.BigEndian.PutUint32(ihdr[0:], uint32(width))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(height))
	ihdr[8], ihdr[9] = 8, 2 // 8-bit, truecolour (RGB)
	return writeChunk(w, "IHDR", ihdr[:])
}

// RowEncoder writes an opaque *image.RGBA as PNG (RGB, Up filter,
// BestSpeed) band by band (NewRowEncoder, Rows), so a picture can be
// encoded while its lower rows are still being rendered. Rows must be
// written top to bottom, once each; the bytes of EncodePNG and of a
// RowEncoder fed every row are identical. (A frame rendered by slaves is
// joined from bands they compressed: AppendBand, BandWriter.)
type RowEncoder struct {
	w      io.Writer
	m      *image.RGBA
	cw     *chunkWriter
	bw     *bufio.Writer
	zw     *zlib.Writer
	width  int
	height int
	cur    []byte // filter byte + RGB row (+ 2 spare bytes, see upRGB)
	prev   []byte // zeros: the row above the first
	y      int    // next row to encode, relative to the image's top
	close  sync.Once
}

// NewRowEncoder writes the PNG header of m (whose pixels may still be
// incomplete) and returns an encoder for its rows (Rows).
func NewRowEncoder(w io.Writer, m *image.RGBA) (*RowEncoder, error) {
	width, height := m.Bounds().Dx(), m.Bounds().Dy()
	if err := writeHeader(w, width, height); err != nil {
		return nil, err
	}
	e := &RowEncoder{w: w, m: m, width: width, height: height, cw: &chunkWriter{w: w}}
	// IDAT chunks of up to 64 KiB.
	e.bw = bufio.NewWriterSize(e.cw, 1<<16)
	e.zw = zlibPool.Get().(*zlib.Writer)
	e.zw.Reset(e.bw)
	e.cur = make([]byte, 1+3*width+2)[:1+3*width]
	e.prev = make([]byte, 4*width)
	e.cur[0] = 2 // filter type Up
	return e, nil
}

// Rows encodes the rows of the encoder's image (NewRowEncoder) from the
// last one written up to (not including) row end, counted from the image's
// top. The pixels of those rows must be final.
func (e *RowEncoder) Rows(end int) error {
	b := e.m.Bounds()
	end = min(end, e.height)
	for ; e.y < end; e.y++ {
		off := e.m.PixOffset(b.Min.X, b.Min.Y+e.y)
		row := e.m.Pix[off : off+4*e.width]
		prev := e.prev // zeros: the row above the first
		if e.y > 0 {
			prev = e.m.Pix[off-e.m.Stride : off-e.m.Stride+4*e.width]
		}
		if err := e.encode(row, prev); err != nil {
			return err
		}
	}
	return nil
}

// encode filters row (RGBA) over prev and compresses it.
func (e *RowEncoder) encode(row, prev []byte) error {
	upRGB(e.cur[1:cap(e.cur)], row, prev)
	_, err := e.zw.Write(e.cur)
	return err
}

// upRGB writes the PNG "Up" filter of an RGBA row over the row above (prev,
// as RGBA) to line as RGB bytes: line[3x+c] = row[4x+c] - prev[4x+c] mod 256
// for c in R, G, B. It works on 16 pixels at a time with AVX-512
// (upRGBVec) and then on two (SWAR: bytewise subtraction in a uint64);
// line needs 2 spare bytes at its end.
func upRGB(line, row, prev []byte) {
	const hi = 0x8080808080808080
	n := len(row) / 4
	x := upRGBVec(line, row, prev)
	for ; x+2 <= n; x += 2 {
		a := binary.LittleEndian.Uint64(row[4*x:])
		p := binary.LittleEndian.Uint64(prev[4*x:])
		d := ((a | hi) - (p &^ hi)) ^ ((a ^ ^p) & hi)
		// bytes R0 G0 B0 A0 R1 G1 B1 A1 -> R0 G0 B0 R1 G1 B1
		binary.LittleEndian.PutUint64(line[3*x:], d&0xffffff|(d>>8)&0xffffff000000)
	}
	for ; x < n; x++ {
		line[3*x] = row[4*x] - prev[4*x]
		line[3*x+1] = row[4*x+1] - prev[4*x+1]
		line[3*x+2] = row[4*x+2] - prev[4*x+2]
	}
}

// Close finishes the PNG; every row must have been written.
func (e *RowEncoder) Close() error {
	if e.y != e.height {
		return invalid("rows", "closed after %d of %d rows", e.y, e.height)
	}
	err := e.zw.Close()
	e.close.Do(func() { zlibPool.Put(e.zw) })
	if err != nil {
		return err
	}
	if err := e.bw.Flush(); err != nil {
		return err
	}
	if e.cw.err != nil {
		return e.cw.err
	}
	return writeChunk(e.w, "IEND", nil)
}
