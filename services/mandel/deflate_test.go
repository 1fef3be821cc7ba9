package mandel

import (
	"bytes"
	"compress/flate"
	"hash/adler32"
	"io"
	"math/rand/v2"
	"testing"
)

// inflate decodes a runDeflater stream with the standard library: with
// an empty final block appended (what BandWriter.Close adds) it must be a
// complete deflate stream.
func inflate(t testing.TB, stream []byte) []byte {
	t.Helper()
	if !bytes.HasSuffix(stream, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("the stream does not end with a sync flush: % x", stream[max(0, len(stream)-8):])
	}
	r := flate.NewReader(io.MultiReader(bytes.NewReader(stream), bytes.NewReader([]byte{0x03, 0x00})))
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("inflate: %v", err)
	}
	return got
}

// deflateChunks compresses data written in pieces of the given sizes
// (cycled; none: one write) and checks the Adler-32 runDeflater computed
// on the way.
func deflateChunks(t testing.TB, data []byte, chunks []int) []byte {
	t.Helper()
	var d runDeflater
	d.reset([]byte("prefix"))
	for i, k := 0, 0; i < len(data); k++ {
		n := len(data) - i
		if len(chunks) > 0 {
			n = min(n, chunks[k%len(chunks)])
		}
		d.write(data[i : i+n])
		i += n
	}
	if got, want := d.adler32(), adler32.Checksum(data); got != want {
		t.Errorf("Adler-32 %08x, want %08x", got, want)
	}
	return d.finish()[len("prefix"):]
}

func TestRunDeflaterRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int, alphabet int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.IntN(alphabet))
		}
		return b
	}
	runs := func(lengths ...int) []byte {
		var b []byte
		for i, n := range lengths {
			b = append(b, bytes.Repeat([]byte{byte(i * 37)}, n)...)
		}
		return b
	}
	// skewed: byte i about 1.6^-i of the time, so that the Huffman code
	// would be deeper than deflate allows without the length limit.
	var skewed []byte
	for i := range 30 {
		skewed = append(skewed, bytes.Repeat([]byte{byte(2 * i)}, int(1e5/pow(1.6, i))+1)...)
	}
	rnd.Shuffle(len(skewed), func(i, j int) { skewed[i], skewed[j] = skewed[j], skewed[i] })
	cases := []struct {
		name   string
		data   []byte
		chunks []int
	}{
		{"empty", nil, nil},
		{"one byte", []byte{7}, nil},
		{"one zero", []byte{0}, nil},
		{"two bytes", []byte{0, 0}, nil},
		{"runs around the match lengths", runs(1, 2, 3, 4, 257, 258, 259, 260, 515, 516, 517, 1000, 3), nil},
		{"a long run at the end", runs(5, 100000), nil},
		{"zeros", make([]byte, 300000), nil},
		{"zeros in odd pieces", make([]byte, 5000), []int{1, 7, 63, 64, 65, 129, 2}},
		{"random, many blocks", random(200000, 256), nil},
		{"random in odd pieces", random(20000, 256), []int{3, 1, 64, 100, 8}},
		{"0xff for Adler-32's sums", bytes.Repeat([]byte{0xff}, 70000), []int{5552, 64, 1}},
		{"small alphabet", random(100000, 3), []int{1501}},
		{"skewed", skewed, []int{4096}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := inflate(t, deflateChunks(t, tc.data, tc.chunks))
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("inflated %d bytes differ from the %d written", len(got), len(tc.data))
			}
		})
	}
}

func pow(x float64, n int) float64 {
	r := 1.0
	for range n {
		r *= x
	}
	return r
}

func TestHuffmanLengths(t *testing.T) {
	fib := make([]uint32, 40) // Fibonacci counts: the deepest Huffman tree
	fib[0], fib[1] = 1, 1
	for i := 2; i < len(fib); i++ {
		fib[i] = fib[i-1] + fib[i-2]
	}
	cases := []struct {
		name    string
		freq    []uint32
		maxBits int
	}{
		{"one symbol", []uint32{0, 0, 5}, 7},
		{"two symbols", []uint32{3, 9}, 7},
		{"uniform", []uint32{1, 1, 1, 1, 1, 1, 1, 1}, 15},
		{"fibonacci limited to 11", fib, 11},
		{"fibonacci limited to 7", fib[:19], 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lengths := make([]uint8, len(tc.freq))
			var h huffScratch
			huffmanLengths(lengths, tc.freq, tc.maxBits, &h)
			kraft, used := 0.0, 0
			for s, l := range lengths {
				if int(l) > tc.maxBits {
					t.Errorf("symbol %d: length %d > %d", s, l, tc.maxBits)
				}
				if tc.freq[s] > 0 && l == 0 {
					t.Errorf("used symbol %d has no code", s)
				}
				if l > 0 {
					kraft += 1 / pow(2, int(l))
					used++
				}
			}
			if kraft != 1 || used < 2 {
				t.Errorf("lengths %v: Kraft sum %g over %d codes, want a complete code", lengths, kraft, used)
			}
		})
	}
}

// FuzzRunDeflater: any bytes, written in any pieces, inflate back, and
// their Adler-32 is right.
func FuzzRunDeflater(f *testing.F) {
	f.Add([]byte("\x02\x00\x00\x00\x01\xff\x00\x00\x00\x00\x00"), uint8(3))
	f.Add(bytes.Repeat([]byte{0}, 600), uint8(64))
	f.Add([]byte{}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var chunks []int
		if chunk > 0 {
			chunks = []int{int(chunk), int(chunk)/3 + 1}
		}
		if got := inflate(t, deflateChunks(t, data, chunks)); !bytes.Equal(got, data) {
			t.Fatalf("inflated %d bytes differ from the %d written", len(got), len(data))
		}
	})
}

// TestScan64Vec: the AVX-512 scan gives scan64's mask and sums.
func TestScan64Vec(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512 in this build or CPU")
	}
	rnd := rand.New(rand.NewPCG(7, 8))
	for _, tc := range []struct {
		name string
		byte func(i int) byte
	}{
		{"random", func(int) byte { return byte(rnd.Uint32()) }},
		{"zeros", func(int) byte { return 0 }},
		{"0xff", func(int) byte { return 0xff }},
		{"runs", func(i int) byte { return byte(i / 5 % 3) }},
	} {
		p := make([]byte, 1000)
		for i := range p {
			p[i] = tc.byte(i)
		}
		for i := 1; i+64 <= len(p); i += 13 {
			m, s, w := scan64Vec(p, i)
			wm, ws, ww := scan64(p[i:i+64], p[i-1])
			if m != wm || s != ws || w != ww {
				t.Fatalf("%s at %d: %#x %d %d, want %#x %d %d", tc.name, i, m, s, w, wm, ws, ww)
			}
		}
	}
}
