package web

import (
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/balancer"
	"github.com/calclab/calclab/services/httpserve"
	"github.com/calclab/calclab/services/mandel"
)

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	e := httpserve.New(slog.New(slog.DiscardHandler), nil)
	e.GET("/health", func(c *echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, body
}

func TestServesAssets(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="/ui/app.js">`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "window.calclab"},
		{"/ui/style.css", "text/css; charset=utf-8", ".layout"},
		{"/ui/favicon.svg", "image/svg+xml", "<svg"},
	} {
		res, body := do(t, http.MethodGet, srv.URL+tc.path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", tc.path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", tc.path, got)
		}
		if !strings.Contains(string(body), tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		etag := res.Header.Get("ETag")
		if etag == "" {
			t.Errorf("GET %s: no ETag", tc.path)
			continue
		}
		res, body = do(t, http.MethodGet, srv.URL+tc.path, map[string]string{"If-None-Match": etag})
		if res.StatusCode != http.StatusNotModified || len(body) != 0 {
			t.Errorf("GET %s with If-None-Match: %d, %d bytes; want 304, empty", tc.path, res.StatusCode, len(body))
		}
		res, body = do(t, http.MethodHead, srv.URL+tc.path, nil)
		if res.StatusCode != http.StatusOK || len(body) != 0 || res.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("HEAD %s: %d, %d bytes, %q", tc.path, res.StatusCode, len(body), res.Header.Get("Content-Type"))
		}
	}
}

// The UI must not swallow the API's JSON 404 (or other methods).
func TestOtherPathsReachTheAPI(t *testing.T) {
	srv := newServer(t)
	res, body := do(t, http.MethodGet, srv.URL+"/health", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Errorf("GET /health: %d %s", res.StatusCode, body)
	}
	for _, tc := range []struct{ method, path string }{
		{http.MethodGet, "/no-such-api"},
		{http.MethodGet, "/ui/no-such-file.js"},
		{http.MethodGet, "/ui/"},
		{http.MethodGet, "/ui/../go.mod"},
		{http.MethodGet, "/uiapp.js"},
		{http.MethodPost, "/"},
		{http.MethodDelete, "/ui/app.js"},
	} {
		res, body := do(t, tc.method, srv.URL+tc.path, nil)
		if res.StatusCode < 400 || res.StatusCode > 405 {
			t.Errorf("%s %s: %d, want a 4xx", tc.method, tc.path, res.StatusCode)
		}
		var e api.Error
		if !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %q %q, want a JSON error", tc.method, tc.path, res.Header.Get("Content-Type"), body)
		}
	}
}

func readStatic(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(Static, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// optionValues returns the values of the <option>s of <select id=id>.
func optionValues(t *testing.T, html, id string) []string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<select id="` + id + `">(.*?)</select>`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("index.html has no <select id=%q>", id)
	}
	var out []string
	for _, o := range regexp.MustCompile(`<option value="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
		if o[1] != "" {
			out = append(out, o[1])
		}
	}
	slices.Sort(out)
	return out
}

// jsList returns the string elements of `const NAME = [...]` in app.js.
func jsList(t *testing.T, js, name string) []string {
	t.Helper()
	m := regexp.MustCompile(`const ` + name + ` = \[([^\]]*)\]`).FindStringSubmatch(js)
	if m == nil {
		t.Fatalf("app.js has no const %s = [...]", name)
	}
	var out []string
	for _, s := range regexp.MustCompile(`'([^']*)'`).FindAllStringSubmatch(m[1], -1) {
		out = append(out, s[1])
	}
	slices.Sort(out)
	return out
}

// The page's colour maps and policies are the server's.
func TestChoicesMatchTheServer(t *testing.T) {
	html, js := readStatic(t, "index.html"), readStatic(t, "app.js")
	cmaps := mandel.Colormaps()
	slices.Sort(cmaps)
	if got := optionValues(t, html, "cmap"); !slices.Equal(got, cmaps) {
		t.Errorf("colour map <select> offers %v, the server has %v", got, cmaps)
	}
	if got := jsList(t, js, "COLORMAPS"); !slices.Equal(got, cmaps) {
		t.Errorf("app.js COLORMAPS is %v, the server has %v", got, cmaps)
	}
	pols := balancer.Names()
	slices.Sort(pols)
	if got := optionValues(t, html, "policy"); !slices.Equal(got, pols) {
		t.Errorf("policy <select> offers %v, the balancer has %v", got, pols)
	}
	if got := jsList(t, js, "POLICIES"); !slices.Equal(got, pols) {
		t.Errorf("app.js POLICIES is %v, the balancer has %v", got, pols)
	}
}

// Every element app.js looks up by id exists, and every asset the page
// links is embedded.
func TestPageIsConsistent(t *testing.T) {
	html, js := readStatic(t, "index.html"), readStatic(t, "app.js")
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bid="([^"]+)"`).FindAllStringSubmatch(html, -1) {
		if ids[m[1]] {
			t.Errorf("index.html: duplicate id %q", m[1])
		}
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\$\('([^']+)'\)`).FindAllStringSubmatch(js, -1) {
		if !ids[m[1]] {
			t.Errorf("app.js looks up #%s, which index.html lacks", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="/ui/([^"]+)"`).FindAllStringSubmatch(html, -1) {
		if _, ok := assets[m[1]]; !ok {
			t.Errorf("index.html links /ui/%s, which is not embedded", m[1])
		}
	}
}
