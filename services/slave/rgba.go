package slave

import "image"

// rgba wraps row-major RGBA bytes as an image without copying.
func rgba(pix []byte, w, h int) *image.RGBA {
	return &image.RGBA{Pix: pix, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
}
