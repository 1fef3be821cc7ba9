// Package browser drives the master's web UI in headless Chromium against a
// real master and two slaves (processes on random loopback ports): the
// Mandelbrot explorer must draw exactly the pixels of GET /mandelbrot/render,
// zoom on a click, and the calculator and the dashboard must work.
//
// It needs Chromium (Debian: apt-get install chromium). Without it the test
// is skipped, or fails when the environment variable CI is set.
package browser

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/mandel"
)

var chromeBin string

// findChrome returns the path of Chromium, or "".
func findChrome() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	chromeBin = findChrome()
	if chromeBin == "" {
		os.Exit(m.Run()) // TestExplorer skips, or fails under CI
	}
	testcluster.Main(m, "calclab-browser-")
}

// startCluster starts a master and two slaves (processes, as in
// tests/integration) and returns the master's URL once both slaves are up.
func startCluster(t *testing.T) string {
	t.Helper()
	m := testcluster.StartMaster(t, t.TempDir(), "--log-level", "warn")
	for _, id := range []string{"slave-1", "slave-2"} {
		testcluster.StartSlave(t, m.URL, id, "--capacity", "4", "--log-level", "warn")
	}
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})
	return m.URL
}

// ---------------------------------------------------------------------------
// The browser.

type consoleLog struct {
	mu   sync.Mutex
	errs []string
	all  []string
}

func (c *consoleLog) add(m chromedp.ConsoleMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	line := fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m.String())
	c.all = append(c.all, line)
	if m.IsException() || m.Type == chromedp.ConsoleError && m.Source == "" {
		c.errs = append(c.errs, line)
	}
}

func (c *consoleLog) errors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

func (c *consoleLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.all, "\n")
}

// newBrowser starts headless Chromium with a fresh profile.
func newBrowser(t *testing.T, width, height int) (context.Context, *consoleLog) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromeBin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	var stopped atomic.Bool // no t.Logf once the test is over
	logf := func(format string, args ...any) {
		if !stopped.Load() {
			t.Logf(format, args...)
		}
	}
	ctx, cancelCtx := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		stopped.Store(true)
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromeBin, err)
	}
	logs := &consoleLog{}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			logs.add(m)
		}
	}()
	return ctx, logs
}

func do(t *testing.T, ctx context.Context, d time.Duration, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitFor polls the JavaScript expression until it is truthy and returns it.
func waitFor[T any](t *testing.T, ctx context.Context, d time.Duration, what, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](js,
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		t.Fatalf("waiting %s for %s: %v", d, what, err)
	}
	return v
}

// view mirrors window.calclab.view.
type view struct {
	CX     float64 `json:"cx"`
	CY     float64 `json:"cy"`
	Scale  float64 `json:"scale"`
	Iter   int     `json:"iter"`
	Cmap   string  `json:"cmap"`
	W      int     `json:"w"`
	H      int     `json:"h"`
	Policy string  `json:"policy"`
}

type lastRender struct {
	Seq    int                   `json:"seq"`
	Done   bool                  `json:"done"`
	Tiles  int                   `json:"tiles"`
	Total  int                   `json:"total"`
	MS     float64               `json:"ms"`
	Error  *string               `json:"error"`
	Slaves map[string]slaveStats `json:"slaves"`
}

type slaveStats struct {
	Tiles  int     `json:"tiles"`
	BusyMS float64 `json:"busy_ms"`
}

// waitRender waits until a render newer than seq has finished, and fails
// the test if it ended in an error.
func waitRender(t *testing.T, ctx context.Context, seq int) lastRender {
	t.Helper()
	state := waitFor[string](t, ctx, 60*time.Second, "the render to finish", fmt.Sprintf(
		`(() => { const r = window.calclab && window.calclab.lastRender, s = document.body.dataset.renderState;
		   return r && r.seq > %d && (s === 'done' || s === 'error') ? s : false; })()`, seq))
	lr := eval[lastRender](t, ctx, `window.calclab.lastRender`)
	if state != "done" || !lr.Done {
		msg := "(none)"
		if lr.Error != nil {
			msg = *lr.Error
		}
		t.Fatalf("render ended in state %q: %s", state, msg)
	}
	return lr
}

// canvasPixels reads the explorer canvas as RGBA bytes.
func canvasPixels(t *testing.T, ctx context.Context) (w, h int, pix []byte) {
	t.Helper()
	type canvasData struct {
		W   int    `json:"w"`
		H   int    `json:"h"`
		B64 string `json:"b64"`
	}
	got := eval[canvasData](t, ctx, `(() => {
		const c = document.getElementById('view');
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let s = '';
		for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode.apply(null, d.subarray(i, i + 0x8000));
		return { w: c.width, h: c.height, b64: btoa(s) };
	})()`)
	pix, err := base64.StdEncoding.DecodeString(got.B64)
	if err != nil {
		t.Fatal(err)
	}
	if len(pix) != 4*got.W*got.H {
		t.Fatalf("canvas %dx%d gave %d bytes", got.W, got.H, len(pix))
	}
	return got.W, got.H, pix
}

// fetchPNG gets a rendered frame from the master as RGBA.
func fetchPNG(t *testing.T, u string) *image.RGBA {
	t.Helper()
	res, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("GET %s: %s %q: %.200s", u, res.Status, res.Header.Get("Content-Type"), body)
	}
	img, err := mandel.DecodePNG(body)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return img
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// ---------------------------------------------------------------------------

// The test view: near the boundary in the seahorse valley, small enough to
// render fast, with both inside (black) and escaping (coloured) points.
const (
	testW, testH = 400, 300
	testCX       = "-0.7453"
	testCY       = "0.1127"
	testScale    = "0.00005"
	testIter     = 100
	testCmap     = "classic"
)

// screenshotView is the view of the screenshots (window.calclab.setView):
// the whole set, tinted by slave; about 290 KB of PNG at 1280x900.
const screenshotView = `{cx: -0.6, cy: 0, scale: 0.00433, w: 800, h: 600, iter: 200, cmap: 'ocean'}`

func TestExplorer(t *testing.T) {
	if chromeBin == "" {
		msg := "Chromium is not installed (no chromium or chromium-browser in PATH); install it with: apt-get install -y chromium"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	began := time.Now()
	master := startCluster(t)
	ctx, logs := newBrowser(t, 1280, 900)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- browser console ---\n%s", logs)
		}
	})
	t.Logf("cluster and browser up in %s", time.Since(began).Round(time.Millisecond))

	// 1. Open a shared view by its URL hash.
	hash := fmt.Sprintf("#cx=%s&cy=%s&scale=%s&iter=%d&cmap=%s&w=%d&h=%d", testCX, testCY, testScale, testIter, testCmap, testW, testH)
	step := time.Now()
	do(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(master+"/"+hash))
	lr := waitRender(t, ctx, 0)
	t.Logf("first render: %d tiles in %.1f ms (page load to done %s)", lr.Tiles, lr.MS, time.Since(step).Round(time.Millisecond))

	v := eval[view](t, ctx, `window.calclab.view`)
	want := view{CX: -0.7453, CY: 0.1127, Scale: 0.00005, Iter: testIter, Cmap: testCmap, W: testW, H: testH}
	if v != want {
		t.Fatalf("view from the hash is %+v, want %+v", v, want)
	}

	// 2. The canvas holds exactly the server's picture of that view.
	q := url.Values{}
	q.Set("cx", testCX)
	q.Set("cy", testCY)
	q.Set("scale", testScale)
	q.Set("width", strconv.Itoa(testW))
	q.Set("height", strconv.Itoa(testH))
	q.Set("max_iter", strconv.Itoa(testIter))
	q.Set("colormap", testCmap)
	renderURL := master + "/mandelbrot/render?" + q.Encode()
	pageURL := eval[string](t, ctx, `window.calclab.renderURL()`)
	pu, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	for k := range q {
		if a, b := pu.Query().Get(k), q.Get(k); a != b {
			if fa, e1 := strconv.ParseFloat(a, 64); e1 != nil || fa != mustFloat(t, b) {
				t.Errorf("renderURL() has %s=%q, want %q (%s)", k, a, b, pageURL)
			}
		}
	}
	w, h, pix := canvasPixels(t, ctx)
	if w != testW || h != testH {
		t.Fatalf("canvas is %dx%d, want %dx%d", w, h, testW, testH)
	}
	checkNotBlank(t, pix)
	wantImg := fetchPNG(t, renderURL)
	comparePixels(t, pix, wantImg)

	// 3. Progress bar at 100%, legend naming both slaves.
	progress := eval[string](t, ctx, `document.getElementById('progress').getAttribute('aria-valuenow') + ' ' + document.getElementById('progress-text').textContent`)
	if progress != "100 100%" {
		t.Errorf("progress bar shows %q, want 100%%", progress)
	}
	legend := eval[string](t, ctx, `document.getElementById('legend').textContent`)
	for _, id := range []string{"slave-1", "slave-2"} {
		if !strings.Contains(legend, id) {
			t.Errorf("legend %q does not list %s", legend, id)
		}
		if lr.Slaves[id].Tiles == 0 {
			t.Errorf("lastRender.slaves has no tiles from %s: %+v", id, lr.Slaves)
		}
	}
	if lr.Tiles != lr.Total || lr.Tiles < 2 {
		t.Errorf("lastRender: %d of %d tiles", lr.Tiles, lr.Total)
	}

	// 4. The tile tint (on by default) is on its own canvas: the toggle
	// hides and shows it without touching the image canvas.
	waitFor[bool](t, ctx, 5*time.Second, "the overlay to show by default", `!document.getElementById('overlay').hidden`)
	do(t, ctx, 10*time.Second, "toggle the overlay off", chromedp.Click(chromedp.CSS(`label.switch`)))
	waitFor[bool](t, ctx, 5*time.Second, "the overlay to hide", `document.getElementById('overlay').hidden`)
	do(t, ctx, 10*time.Second, "toggle the overlay on", chromedp.Click(chromedp.CSS(`label.switch`)))
	waitFor[bool](t, ctx, 5*time.Second, "the overlay to show", `!document.getElementById('overlay').hidden`)
	_, _, after := canvasPixels(t, ctx)
	if !bytes.Equal(after, pix) {
		t.Error("toggling the overlay changed the image canvas")
	}

	// 5. Click off-centre: zoom in x2 centred on the click point.
	hashBefore := eval[string](t, ctx, `location.hash`)
	rect := eval[struct{ X, Y, W, H float64 }](t, ctx, `(() => { const r = document.getElementById('view').getBoundingClientRect();
		return { X: r.left, Y: r.top, W: r.width, H: r.height }; })()`)
	cx, cy := rect.X+0.7*rect.W, rect.Y+0.3*rect.H
	fx, fy := (cx-rect.X)*testW/rect.W, (cy-rect.Y)*testH/rect.H
	x0, y0 := v.CX-testW/2*v.Scale, v.CY+testH/2*v.Scale
	wantCX, wantCY := x0+fx*v.Scale, y0-fy*v.Scale
	step = time.Now()
	do(t, ctx, 10*time.Second, "click the canvas", chromedp.MouseClickXY(cx, cy))
	lr2 := waitRender(t, ctx, lr.Seq)
	t.Logf("zoomed render: %d tiles in %.1f ms (click to done %s)", lr2.Tiles, lr2.MS, time.Since(step).Round(time.Millisecond))
	v2 := eval[view](t, ctx, `window.calclab.view`)
	if v2.Scale != v.Scale/2 {
		t.Errorf("scale after a click is %g, want %g", v2.Scale, v.Scale/2)
	}
	if v2.CX == v.CX || v2.CY == v.CY {
		t.Errorf("centre did not move: %+v -> %+v", v, v2)
	}
	if math.Abs(v2.CX-wantCX) > 1.01*v.Scale || math.Abs(v2.CY-wantCY) > 1.01*v.Scale {
		t.Errorf("centre after a click at frame pixel (%.1f, %.1f) is (%g, %g), want about (%g, %g)", fx, fy, v2.CX, v2.CY, wantCX, wantCY)
	}
	hashAfter := eval[string](t, ctx, `location.hash`)
	hq, err := url.ParseQuery(strings.TrimPrefix(hashAfter, "#"))
	if err != nil || hashAfter == hashBefore ||
		hq.Get("cx") == "" || mustFloat(t, hq.Get("cx")) != v2.CX ||
		hq.Get("cy") == "" || mustFloat(t, hq.Get("cy")) != v2.CY ||
		hq.Get("scale") == "" || mustFloat(t, hq.Get("scale")) != v2.Scale {
		t.Errorf("URL hash after the zoom is %q (before %q), want the view %+v", hashAfter, hashBefore, v2)
	}
	if w, h, pix := canvasPixels(t, ctx); w == testW && h == testH {
		comparePixels(t, pix, fetchPNG(t, eval[string](t, ctx, `window.calclab.renderURL()`)))
	}

	// 6. Drag pans (same scale), the wheel zooms about the cursor, and
	// shift-click zooms out.
	v = v2
	seq := lr2.Seq
	dragFrom := [2]float64{rect.X + 0.5*rect.W, rect.Y + 0.5*rect.H}
	left := func(p *input.DispatchMouseEventParams) {
		p.Button, p.Buttons, p.ClickCount = input.MouseButtonLeft, 1, 1
	}
	do(t, ctx, 10*time.Second, "drag the canvas",
		chromedp.MouseEvent(chromedp.MousePressed, dragFrom[0], dragFrom[1], left),
		chromedp.MouseEvent(chromedp.MouseMoved, dragFrom[0]+20, dragFrom[1]+10, left),
		chromedp.MouseEvent(chromedp.MouseMoved, dragFrom[0]+40, dragFrom[1]+20, left),
		chromedp.MouseEvent(chromedp.MouseReleased, dragFrom[0]+40, dragFrom[1]+20, left))
	seq = waitRender(t, ctx, seq).Seq
	v3 := eval[view](t, ctx, `window.calclab.view`)
	k := testW / rect.W // frame pixels per CSS pixel
	if v3.Scale != v.Scale || math.Abs(v3.CX-(v.CX-40*k*v.Scale)) > v.Scale/2 || math.Abs(v3.CY-(v.CY+20*k*v.Scale)) > v.Scale/2 {
		t.Errorf("drag by (40, 20) CSS px moved the view from %+v to %+v", v, v3)
	}
	wheelAt := [2]float64{rect.X + 0.25*rect.W, rect.Y + 0.75*rect.H}
	do(t, ctx, 10*time.Second, "turn the wheel over the canvas",
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseWheel, wheelAt[0], wheelAt[1], func(p *input.DispatchMouseEventParams) {
			// Chrome requires deltaX, which cdproto omits when zero.
			p.DeltaX, p.DeltaY = 1e-6, -300
		}))
	seq = waitRender(t, ctx, seq).Seq
	v4 := eval[view](t, ctx, `window.calclab.view`)
	wfx, wfy := (wheelAt[0]-rect.X)*k, (wheelAt[1]-rect.Y)*k
	re3, im3 := v3.CX+(wfx-testW/2)*v3.Scale, v3.CY-(wfy-testH/2)*v3.Scale
	re4, im4 := v4.CX+(wfx-testW/2)*v4.Scale, v4.CY-(wfy-testH/2)*v4.Scale
	if v4.Scale != v3.Scale/2 || math.Abs(re4-re3) > v3.Scale/2 || math.Abs(im4-im3) > v3.Scale/2 {
		t.Errorf("wheel zoom x2 at frame (%.0f, %.0f): view %+v -> %+v; the point under the cursor moved from %g%+gi to %g%+gi",
			wfx, wfy, v3, v4, re3, im3, re4, im4)
	}
	do(t, ctx, 10*time.Second, "shift-click the canvas",
		chromedp.MouseClickXY(rect.X+0.5*rect.W, rect.Y+0.5*rect.H, chromedp.ButtonModifiers(chromedp.ModifierShift)))
	waitRender(t, ctx, seq)
	if v5 := eval[view](t, ctx, `window.calclab.view`); v5.Scale != 2*v4.Scale {
		t.Errorf("shift-click: scale %g -> %g, want x2", v4.Scale, v5.Scale)
	}

	// 7. The calculator.
	do(t, ctx, 10*time.Second, "type an expression", chromedp.SendKeys(chromedp.ID("calc-input"), "4 * (2 + 3)\n"))
	got := waitFor[string](t, ctx, 15*time.Second, "the result of 4 * (2 + 3)",
		`document.getElementById('calc-result').dataset.state === 'ok' && document.getElementById('calc-value').textContent`)
	if got != "20" {
		t.Errorf("4 * (2 + 3) shows %q, want 20", got)
	}
	do(t, ctx, 10*time.Second, "submit 1/0",
		chromedp.SetValue(chromedp.ID("calc-input"), "1/0"),
		chromedp.Click(chromedp.ID("calc-submit")))
	msg := waitFor[string](t, ctx, 15*time.Second, "the error of 1/0",
		`document.getElementById('calc-result').dataset.state === 'error' && document.getElementById('calc-error').textContent`)
	if !strings.Contains(msg, "division by zero") {
		t.Errorf("1/0 shows %q, want a division by zero error", msg)
	}
	history := eval[string](t, ctx, `document.getElementById('calc-history').textContent`)
	if !strings.Contains(history, "4 * (2 + 3)") || !strings.Contains(history, "1/0") {
		t.Errorf("calculator history %q lacks the submissions", history)
	}

	// 8. The dashboard lists both slaves and the recent tasks.
	waitFor[bool](t, ctx, 10*time.Second, "the dashboard to list slave-1 and slave-2",
		`!!document.querySelector('#slaves-body tr[data-slave="slave-1"]') && !!document.querySelector('#slaves-body tr[data-slave="slave-2"]')`)
	waitFor[bool](t, ctx, 10*time.Second, "the recent tasks to show 4 * (2 + 3)",
		`document.getElementById('tasks-body').textContent.includes('4 * (2 + 3)')`)

	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("the page logged errors:\n%s", strings.Join(errs, "\n"))
	}

	// 9. A larger view for the screenshots (artifacts/explorer.png and the
	// README's docs/img/explorer.png).
	seq = eval[int](t, ctx, `window.calclab.lastRender.seq`)
	eval[bool](t, ctx, `window.calclab.setView(`+screenshotView+`), true`)
	lr3 := waitRender(t, ctx, seq)
	t.Logf("screenshot render: %d tiles in %.1f ms", lr3.Tiles, lr3.MS)
	shot := screenshot(t, ctx)
	root := repoRoot(t)
	// The README's copy is only rewritten on request, so a test run leaves
	// the work tree clean: CALCLAB_UPDATE_SCREENSHOT=1 go test ./tests/browser/
	paths := []string{filepath.Join(root, "artifacts", "explorer.png")}
	if os.Getenv("CALCLAB_UPDATE_SCREENSHOT") == "1" {
		paths = append(paths, filepath.Join(root, "docs", "img", "explorer.png"))
	}
	for _, p := range paths {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %d KB; whole test %s", len(shot)/1024, time.Since(began).Round(time.Millisecond))
}

func screenshot(t *testing.T, ctx context.Context) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return shot
}

func mustFloat(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkNotBlank wants more than two colours, some black (inside the set)
// and some coloured pixels.
func checkNotBlank(t *testing.T, pix []byte) {
	t.Helper()
	colours := map[[3]byte]int{}
	black := 0
	for i := 0; i < len(pix); i += 4 {
		c := [3]byte{pix[i], pix[i+1], pix[i+2]}
		colours[c]++
		if c == [3]byte{} {
			black++
		}
	}
	n := len(pix) / 4
	t.Logf("canvas: %d distinct colours, %.1f%% black", len(colours), 100*float64(black)/float64(n))
	if len(colours) <= 2 || black == 0 || black == n {
		t.Errorf("canvas looks blank: %d colours, %d of %d pixels black", len(colours), black, n)
	}
}

// comparePixels wants every RGBA byte of the canvas equal to the server's.
func comparePixels(t *testing.T, pix []byte, want *image.RGBA) {
	t.Helper()
	b := want.Bounds()
	if len(pix) != 4*b.Dx()*b.Dy() {
		t.Fatalf("canvas has %d bytes, the server's PNG is %dx%d", len(pix), b.Dx(), b.Dy())
	}
	diff, maxd := 0, 0
	first := ""
	for y := range b.Dy() {
		for x := range b.Dx() {
			o := want.PixOffset(b.Min.X+x, b.Min.Y+y)
			i := 4 * (y*b.Dx() + x)
			d := 0
			for c := range 4 {
				d = max(d, absDiff(pix[i+c], want.Pix[o+c]))
			}
			if d > 0 {
				if diff == 0 {
					first = fmt.Sprintf("(%d,%d) canvas %v server %v", x, y, pix[i:i+4], want.Pix[o:o+4])
				}
				diff++
				maxd = max(maxd, d)
			}
		}
	}
	if diff > 0 {
		t.Errorf("canvas differs from GET /mandelbrot/render in %d of %d pixels (max channel difference %d); first at %s",
			diff, b.Dx()*b.Dy(), maxd, first)
	} else {
		t.Logf("canvas equals GET /mandelbrot/render: %d pixels, 0 differences", b.Dx()*b.Dy())
	}
}

func absDiff(a, b byte) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}
