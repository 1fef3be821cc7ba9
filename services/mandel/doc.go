// Package mandel is calclab's Mandelbrot renderer: a pure, allocation-light
// escape-time renderer with smooth colouring, used by the slaves to render
// tiles and by benchmarks to render whole frames in one process.
//
// # Geometry
//
// A Frame is the whole picture: a centre (CX, CY), a pixel pitch Scale
// (complex units per pixel) and a size in pixels. Its origin, the complex
// value sampled at frame pixel (0, 0), is
//
//	X0 = CX - Width/2*Scale,  Y0 = CY + Height/2*Scale
//
// Row 0 is the TOP edge: the imaginary part decreases downwards.
//
// A Tile is a rectangle of a frame. It carries the frame origin, the pitch
// and its pixel offset (OX, OY) inside the frame, so tile pixel (px, py) is
// sampled at exactly
//
//	c = (X0 + (OX+px)*Step,  Y0 - (OY+py)*Step)
//
// (the pixel's top-left corner, no half-pixel offset). Because every pixel is
// computed from the frame origin and its absolute pixel index, rendering the
// tiles of a frame and pasting each at (OX, OY) is bit-identical to rendering
// the frame as one tile, whichever process renders each tile — provided the
// tile travels with exact floats (encoding/json does that, and so do
// Tile.Query and TileFromQuery). The arithmetic is written so the compiler
// cannot fuse it into FMA instructions, so identical inputs give identical
// iteration counts on every platform.
//
// # Kernels
//
// The escape-time loop has a scalar kernel (two orbits in lockstep, any
// platform) and, in builds with GOEXPERIMENT=simd on amd64, a vector kernel
// using simd/archsimd: 8 float64 lanes with AVX-512 or 4 with AVX2, chosen
// at start by CPU feature, two vectors in flight, lanes refilled as pixels
// finish (kernel_vec.go says why its pixels are the scalar kernel's, bit for
// bit; TestKernelsGiveIdenticalValues checks it down to 1e-15 pitches and
// max_iter 100,000). Kernels lists what a binary can run; renders use the
// first. The Makefile builds the services with the experiment.
//
// # Colouring
//
// Each pixel gets a smooth (continuous) escape value
// nu = n + 1 - log2(ln|z_n|): a point is outside when |z| > 2 within
// MaxIter iterations, and is then iterated on until |z| > 256 so nu has no
// visible bands. Points that never escape (Inside) are black. A colour map
// is a precomputed cyclic palette of PaletteSize colours spanning
// ColorPeriod iterations, indexed by nu modulo the palette, so every
// MaxIter (1, 501, 10^6, ...) is valid.
//
// # Serving tiles
//
// Validate a request with Tile.Validate(limits) (errors.Is ErrTooLarge →
// 413, ErrInvalid → 400; ValidationError.Field names the field), render it
// with Render (RGBA) or RenderIter (raw smooth values, see Colorize), and
// send it with EncodePNG. Everything is safe for concurrent use; nothing is
// shared between renders.
package mandel
