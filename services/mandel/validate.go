package mandel

import (
	"errors"
	"fmt"
)

// ErrInvalid is wrapped by validation errors for malformed requests (HTTP 400).
var ErrInvalid = errors.New("mandel: invalid request")

// ErrTooLarge is wrapped by validation errors for requests that are
// well-formed but exceed a limit (HTTP 413).
var ErrTooLarge = errors.New("mandel: request too large")

// ValidationError reports one bad field of a Tile, Frame or query. Field is
// the JSON / query name of the field ("width", "max_iter", ...).
// errors.Is(err, ErrTooLarge) tells a limit violation (413) from a malformed
// value (errors.Is(err, ErrInvalid), 400).
type ValidationError struct {
	Field    string
	Reason   string
	TooLarge bool
}

func (e *ValidationError) Error() string {
	return "mandel: " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrTooLarge or ErrInvalid.
func (e *ValidationError) Unwrap() error {
	if e.TooLarge {
		return ErrTooLarge
	}
	return ErrInvalid
}

func invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func tooLarge(field, format string, args ...any) error {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...), TooLarge: true}
}

// Limits caps what a request may ask for. A zero field means "no cap" for
// that field; the renderer's own hard ceiling (HardMaxPixels) always applies.
type Limits struct {
	MaxPixels int // Width*Height
	MaxIter   int // MaxIter
	MaxDim    int // Width and Height each
}

// DefaultLimits suits a slave serving tiles: up to 8192 pixels a side,
// 16 Mpixel (64 MiB of RGBA) and a million iterations.
var DefaultLimits = Limits{MaxPixels: 4096 * 4096, MaxIter: 1_000_000, MaxDim: 8192}

// HardMaxPixels is the largest image Render accepts whatever the Limits
// (1 GiB of RGBA).
const HardMaxPixels = 1 << 28

// maxOffset bounds OX/OY so OX+Width cannot overflow, even with 32-bit int.
const maxOffset = 1 << 30

// Validate checks the tile against lim and reports the first problem as a
// *ValidationError naming the field.
func (t Tile) Validate(lim Limits) error {
	return validate(t, lim, "step")
}

// Validate checks the frame against lim, like Tile.Validate, naming the
// frame's fields ("scale" instead of "step").
func (f Frame) Validate(lim Limits) error {
	switch {
	case !finite(f.CX):
		return invalid("cx", "must be a finite number (got %v)", f.CX)
	case !finite(f.CY):
		return invalid("cy", "must be a finite number (got %v)", f.CY)
	}
	return validate(f.Tile(), lim, "scale")
}

func validate(t Tile, lim Limits, stepName string) error {
	switch {
	case !finite(t.X0):
		return invalid("x0", "must be a finite number (got %v)", t.X0)
	case !finite(t.Y0):
		return invalid("y0", "must be a finite number (got %v)", t.Y0)
	case !finite(t.Step) || t.Step <= 0:
		return invalid(stepName, "must be a finite number > 0 (got %v)", t.Step)
	case t.Width < 1:
		return invalid("width", "must be at least 1 (got %d)", t.Width)
	case t.Height < 1:
		return invalid("height", "must be at least 1 (got %d)", t.Height)
	case t.OX < 0 || t.OX > maxOffset:
		return invalid("ox", "must be between 0 and %d (got %d)", maxOffset, t.OX)
	case t.OY < 0 || t.OY > maxOffset:
		return invalid("oy", "must be between 0 and %d (got %d)", maxOffset, t.OY)
	case t.MaxIter < 1:
		return invalid("max_iter", "must be at least 1 (got %d)", t.MaxIter)
	case lim.MaxIter > 0 && t.MaxIter > lim.MaxIter:
		return tooLarge("max_iter", "must be at most %d (got %d)", lim.MaxIter, t.MaxIter)
	case lim.MaxDim > 0 && t.Width > lim.MaxDim:
		return tooLarge("width", "must be at most %d (got %d)", lim.MaxDim, t.Width)
	case lim.MaxDim > 0 && t.Height > lim.MaxDim:
		return tooLarge("height", "must be at most %d (got %d)", lim.MaxDim, t.Height)
	}
	// Width, Height >= 1 here; compare by division so the product cannot overflow.
	maxPix := HardMaxPixels
	if lim.MaxPixels > 0 && lim.MaxPixels < maxPix {
		maxPix = lim.MaxPixels
	}
	if t.Width > maxPix/t.Height {
		return tooLarge("width", "width*height must be at most %d pixels (got %dx%d)", maxPix, t.Width, t.Height)
	}
	// The far corner must still be a finite complex number.
	if re, im := t.Coord(t.Width-1, t.Height-1); !finite(re) || !finite(im) {
		return invalid(stepName, "tile extends beyond the finite plane (far corner %v%+vi)", re, im)
	}
	if _, err := lookupPalette(t.Colormap); err != nil {
		return err
	}
	return nil
}
