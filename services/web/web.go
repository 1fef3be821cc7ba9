// Package web is calclab's browser UI: a single page (dashboard, calculator
// and Mandelbrot explorer) in plain HTML, CSS and JavaScript, embedded in the
// master binary so it works offline and needs no build step.
//
// Register serves it on the master's Echo instance: GET / is the page and
// GET /ui/<file> its assets. The UI is served by a middleware, not by
// routes, so the master's route table stays exactly the API that
// services/api/openapi.json documents, and every other unknown path still
// gets the API's JSON 404.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/labstack/echo/v5"
)

//go:embed static
var static embed.FS

// Static is the embedded UI: index.html, app.js, style.css, favicon.svg, and
// the API reference page api.html (api.js, api.css) that renders /openapi.json.
var Static = func() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err)
	}
	return sub
}()

// AssetPrefix is the URL path under which the page's assets are served.
const AssetPrefix = "/ui/"

// contentTypes are set explicitly so the answer does not depend on the
// host's MIME tables.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".json": "application/json",
}

func contentType(name string) string {
	ext := path.Ext(name)
	if ct, ok := contentTypes[ext]; ok {
		return ct
	}
	if ct := mime.TypeByExtension(ext); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// Register makes e serve the UI: GET (and HEAD) / is index.html, /ui/<file>
// an embedded asset. Any other request, and a /ui/ path naming no asset,
// goes on to e's routes (and so to the API's JSON 404).
func Register(e *echo.Echo) {
	e.Use(Middleware)
}

// Middleware serves the UI and passes every other request to next.
func Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		req := c.Request()
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			return next(c)
		}
		p := req.URL.Path
		var name string
		switch {
		case p == "/":
			name = "index.html"
		case strings.HasPrefix(p, AssetPrefix):
			name = strings.TrimPrefix(p, AssetPrefix)
		default:
			return next(c)
		}
		a, ok := assets[name]
		if !ok {
			return next(c) // the router answers: JSON 404
		}
		return serve(c, a)
	}
}

// asset is one embedded file, ready to serve.
type asset struct {
	data        []byte
	contentType string
	etag        string
}

var assets = func() map[string]asset {
	m := map[string]asset{}
	err := fs.WalkDir(Static, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(Static, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		m[name] = asset{data: data, contentType: contentType(name), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return m
}()

func serve(c *echo.Context, a asset) error {
	h := c.Response().Header()
	h.Set("Content-Type", a.contentType)
	// no-cache: the browser revalidates (cheaply, by ETag) every time, so a
	// new master binary never pairs a new page with a stale script.
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("ETag", a.etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && match == a.etag {
		return c.NoContent(http.StatusNotModified)
	}
	if c.Request().Method == http.MethodHead {
		h.Set("Content-Length", strconv.Itoa(len(a.data)))
		return c.NoContent(http.StatusOK)
	}
	return c.Blob(http.StatusOK, a.contentType, a.data)
}
