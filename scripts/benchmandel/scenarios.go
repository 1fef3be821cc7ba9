package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/calclab/calclab/internal/sse"
	"github.com/calclab/calclab/scripts/internal/benchkit"
	"github.com/calclab/calclab/services/mandel"
)

// heavyFrame is scenario (2)'s frame: 4K, 1000 iterations, 0.0006 wide
// around a point of the seahorse valley's spiral (mostly boundary, some
// interior).
var heavyFrame = mandel.Frame{
	CX: -0.7436447860, CY: 0.1318252536,
	Scale: 0.0006 / 3840, Width: 3840, Height: 2160, MaxIter: 1000,
}

const (
	// tileTimeout is the master's --tile-timeout: far above any tile's
	// render time, so a slow machine does not turn into retries.
	tileTimeout = 2 * time.Minute

	seedMedianTarget = 6 * time.Millisecond
	// seedStackTook is what the seed's nginx + workers took for its view.
	seedStackTook    = 1400 * time.Millisecond
	heavyRatioTarget = 1.10
	// heavyRenderTarget is frame (2)'s in-process render (no PNG), all cores.
	heavyRenderTarget = 350 * time.Millisecond
)

var policies = []string{"least-conn", "round-robin"}

type bench struct {
	cfg    config
	c      *benchkit.Cluster
	client *http.Client
	// heavyRef is frame (2) rendered in this process: the reference the
	// master's PNG and the streamed tiles are compared with.
	heavyRef *image.RGBA
}

func newBench(cfg config, c *benchkit.Cluster) *bench {
	return &bench{cfg: cfg, c: c, client: benchkit.NewClient(8, cfg.timeout)}
}

// frameURL is path on the master with the frame's query parameters; floats
// are written so they parse back to the same bits.
func (b *bench) frameURL(path string, f mandel.Frame, extra ...string) string {
	g := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	q := url.Values{}
	q.Set("cx", g(f.CX))
	q.Set("cy", g(f.CY))
	q.Set("scale", g(f.Scale))
	q.Set("width", strconv.Itoa(f.Width))
	q.Set("height", strconv.Itoa(f.Height))
	q.Set("max_iter", strconv.Itoa(f.MaxIter))
	if b.cfg.tile > 0 {
		q.Set("tile", strconv.Itoa(b.cfg.tile))
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return b.c.MasterURL + path + "?" + q.Encode()
}

// get fetches url into buf; lat is from just before the call to the end of
// the body.
func (b *bench) get(ctx context.Context, url string, buf *bytes.Buffer) (http.Header, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	buf.Reset()
	t0 := time.Now()
	res, err := b.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	_, err = buf.ReadFrom(res.Body)
	lat := time.Since(t0)
	res.Body.Close()
	if err != nil {
		return res.Header, lat, fmt.Errorf("read reply: %w", err)
	}
	if res.StatusCode != http.StatusOK {
		return res.Header, lat, fmt.Errorf("HTTP %d: %s", res.StatusCode, benchkit.Snippet(buf.Bytes()))
	}
	return res.Header, lat, nil
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// checkPNG verifies a reply is a PNG of w x h pixels (header only).
func checkPNG(h http.Header, data []byte, w, ht int) error {
	if ct := h.Get("Content-Type"); ct != "image/png" {
		return fmt.Errorf("Content-Type %q, want image/png", ct)
	}
	if !bytes.HasPrefix(data, pngSignature) {
		return fmt.Errorf("reply of %d bytes is not a PNG: %s", len(data), benchkit.Snippet(data))
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("PNG header: %w", err)
	}
	if cfg.Width != w || cfg.Height != ht {
		return fmt.Errorf("PNG is %dx%d, want %dx%d", cfg.Width, cfg.Height, w, ht)
	}
	return nil
}

// compareImages returns "yes" when got has exactly want's pixels, else
// "no (...)" saying how many pixels differ and where the first one is.
func compareImages(got, want *image.RGBA) string {
	if got.Bounds().Size() != want.Bounds().Size() {
		return fmt.Sprintf("no (size %v, want %v)", got.Bounds().Size(), want.Bounds().Size())
	}
	w, h := want.Bounds().Dx(), want.Bounds().Dy()
	diff, first := 0, image.Point{-1, -1}
	for y := range h {
		a := got.Pix[y*got.Stride : y*got.Stride+4*w]
		b := want.Pix[y*want.Stride : y*want.Stride+4*w]
		if bytes.Equal(a, b) {
			continue
		}
		for x := range w {
			if !bytes.Equal(a[4*x:4*x+4], b[4*x:4*x+4]) {
				if diff == 0 {
					first = image.Pt(x, y)
				}
				diff++
			}
		}
	}
	if diff == 0 {
		return "yes"
	}
	return fmt.Sprintf("no (%d of %d pixels differ, first at %d,%d)", diff, w*h, first.X, first.Y)
}

// ---- (1) seed view ----

type seedResult struct {
	requests  int // measured
	bad       int
	warmReqs  int
	warmBad   int
	window    time.Duration
	lat       []time.Duration // successful measured requests, sorted
	serverMS  []float64       // X-Render-Ms of those, sorted
	tiles     string          // X-Render-Tiles
	slaves    map[string]int  // tiles per slave over the measured requests
	pngBytes  int
	identical string // first reply decoded vs the in-process render
	errs      benchkit.ErrLog
	cpu       benchkit.CPUUse
	// The same view rendered and encoded in this process (after the
	// measured window): what the master's PNG encode alone costs.
	inRender, inEncode, inTotal []time.Duration
}

func (b *bench) runSeed(ctx context.Context) *seedResult {
	r := &seedResult{slaves: map[string]int{}}
	f := mandel.SeedFrame()
	u := b.c.MasterURL + "/mandelbrot/render"
	var buf bytes.Buffer

	// One unmeasured request checked pixel by pixel (and saved).
	progress("(1) seed: checking GET %s against an in-process render", u)
	want, err := mandel.RenderFrame(context.Background(), f, runtime.GOMAXPROCS(0))
	if err != nil {
		r.errs.Add("in-process render: ", err)
		return r
	}
	h, _, err := b.get(ctx, u, &buf)
	if err == nil {
		err = checkPNG(h, buf.Bytes(), f.Width, f.Height)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		r.errs.Add("check request: ", err)
		r.bad++
		return r
	}
	got, err := mandel.DecodePNG(buf.Bytes())
	if err != nil {
		r.identical = "no (decode: " + err.Error() + ")"
	} else {
		r.identical = compareImages(got, want)
	}
	b.save("seed.png", buf.Bytes())

	progress("(1) seed: sequential requests, warm-up %s + %s", b.cfg.warmup, b.cfg.duration)
	start := time.Now()
	mStart := start.Add(b.cfg.warmup)
	end := mStart.Add(b.cfg.duration)
	var snap benchkit.CPUSnap
	opened := false
	var last time.Time
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			break
		}
		measured := !t0.Before(mStart)
		if measured && !opened {
			snap, opened = b.c.SnapCPU(), true
		}
		h, lat, err := b.get(ctx, u, &buf)
		if err == nil {
			err = checkPNG(h, buf.Bytes(), f.Width, f.Height)
		}
		if ctx.Err() != nil {
			break
		}
		if !measured {
			r.warmReqs++
			if err != nil {
				r.warmBad++
				r.errs.Add("warm-up: ", err)
			}
			continue
		}
		r.requests++
		last = time.Now()
		if err != nil {
			r.bad++
			r.errs.Add("", err)
			continue
		}
		r.lat = append(r.lat, lat)
		if ms, err := strconv.ParseFloat(h.Get("X-Render-Ms"), 64); err == nil {
			r.serverMS = append(r.serverMS, ms)
		}
		r.tiles = h.Get("X-Render-Tiles")
		addSlaveTiles(r.slaves, h.Get("X-Render-Slaves"))
		r.pngBytes = buf.Len()
	}
	if opened {
		r.cpu.Add(snap, b.c.SnapCPU())
		r.window = last.Sub(mStart)
	}
	if ctx.Err() != nil {
		return nil
	}
	slices.Sort(r.lat)
	slices.Sort(r.serverMS)
	// Reference: the same view in this process, render + encode, for up to
	// 1s or 100 runs (the services are idle now).
	deadline := time.Now().Add(time.Second)
	for range 100 {
		if ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		t0 := time.Now()
		img, err := mandel.RenderFrame(context.Background(), f, runtime.GOMAXPROCS(0))
		if err != nil {
			r.errs.Add("in-process render: ", err)
			break
		}
		t1 := time.Now()
		buf.Reset()
		if err := mandel.EncodePNG(&buf, img); err != nil {
			r.errs.Add("in-process encode: ", err)
			break
		}
		t2 := time.Now()
		r.inRender = append(r.inRender, t1.Sub(t0))
		r.inEncode = append(r.inEncode, t2.Sub(t1))
		r.inTotal = append(r.inTotal, t2.Sub(t0))
	}
	progress("(1) seed: %d requests, median %s, p90 %s, %d errors", r.requests, benchkit.FmtDur(benchkit.Percentile(r.lat, 50)), benchkit.FmtDur(benchkit.Percentile(r.lat, 90)), r.bad)
	return r
}

// addSlaveTiles adds an X-Render-Slaves header ("slave-1=9, slave-2=7").
func addSlaveTiles(m map[string]int, h string) {
	for _, part := range strings.Split(h, ",") {
		id, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		if v, err := strconv.Atoi(n); err == nil {
			m[id] += v
		}
	}
}

// ---- (2) heavy frame: master vs in-process ----

type heavyResult struct {
	master       []time.Duration // client wall time per measured run
	serverMS     []float64       // X-Render-Ms
	tiles        string
	slaves       []string // X-Render-Slaves per run
	pngBytes     int
	inproc       []time.Duration // render + encode
	render       []time.Duration
	encode       []time.Duration
	inprocBytes  int
	warmMaster   time.Duration
	warmInproc   time.Duration
	identical    string
	colours      int
	black        float64 // fraction of black (inside) pixels
	errs         benchkit.ErrLog
	cpuMaster    benchkit.CPUUse
	cpuInprocess benchkit.CPUUse
}

// renderInProcess renders and encodes the heavy frame here, on all cores.
func renderInProcess(buf *bytes.Buffer) (*image.RGBA, time.Duration, time.Duration, error) {
	t0 := time.Now()
	img, err := mandel.RenderFrame(context.Background(), heavyFrame, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, 0, 0, err
	}
	t1 := time.Now()
	buf.Reset()
	if err := mandel.EncodePNG(buf, img); err != nil {
		return nil, 0, 0, err
	}
	return img, t1.Sub(t0), time.Since(t1), nil
}

// reference renders the heavy frame in this process once, if not yet.
func (b *bench) reference() (*image.RGBA, error) {
	if b.heavyRef == nil {
		var buf bytes.Buffer
		img, _, _, err := renderInProcess(&buf)
		if err != nil {
			return nil, err
		}
		b.heavyRef = img
	}
	return b.heavyRef, nil
}

func (b *bench) runHeavy(ctx context.Context) *heavyResult {
	r := &heavyResult{}
	f := heavyFrame
	u := b.frameURL("/mandelbrot/render", f)
	var mbuf, ibuf bytes.Buffer

	masterRun := func() (time.Duration, http.Header, error) {
		h, lat, err := b.get(ctx, u, &mbuf)
		if err == nil {
			err = checkPNG(h, mbuf.Bytes(), f.Width, f.Height)
		}
		return lat, h, err
	}

	// Warm-up: one render each way, unmeasured; the master's PNG is
	// decoded and compared with the in-process image.
	progress("(2) heavy: warm-up, one %dx%d render through the master and one in process", f.Width, f.Height)
	lat, _, err := masterRun()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		r.errs.Add("warm-up master render: ", err)
		return r
	}
	r.warmMaster = lat
	t0 := time.Now()
	img, _, _, err := renderInProcess(&ibuf)
	if err != nil {
		r.errs.Add("in-process render: ", err)
		return r
	}
	r.warmInproc = time.Since(t0)
	b.heavyRef = img
	got, err := mandel.DecodePNG(mbuf.Bytes())
	if err != nil {
		r.identical = "no (decode: " + err.Error() + ")"
	} else {
		r.identical = compareImages(got, img)
	}
	r.colours, r.black = colourStats(img)
	b.save("heavy.png", mbuf.Bytes())
	if b.cfg.saveDir != "" {
		var pbuf bytes.Buffer
		if err := png.Encode(&pbuf, downscale(img, 4)); err == nil {
			b.save("heavy-preview.png", pbuf.Bytes())
		}
	}
	progress("(2) heavy: warm-up master %s, in-process %s; identical: %s; %d distinct colours, %.2f%% black",
		benchkit.FmtDur(r.warmMaster), benchkit.FmtDur(r.warmInproc), r.identical, r.colours, 100*r.black)
	got, img = nil, nil
	runtime.GC()

	for i := range b.cfg.heavyRuns {
		if ctx.Err() != nil {
			return nil
		}
		var (
			lat time.Duration
			h   http.Header
			err error
		)
		b.c.Measure(&r.cpuMaster, func() { lat, h, err = masterRun() })
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.errs.Add("master render: ", err)
		} else {
			r.master = append(r.master, lat)
			if ms, err := strconv.ParseFloat(h.Get("X-Render-Ms"), 64); err == nil {
				r.serverMS = append(r.serverMS, ms)
			}
			r.tiles = h.Get("X-Render-Tiles")
			r.slaves = append(r.slaves, h.Get("X-Render-Slaves"))
			r.pngBytes = mbuf.Len()
		}
		var render, encode time.Duration
		b.c.Measure(&r.cpuInprocess, func() { _, render, encode, err = renderInProcess(&ibuf) })
		if err != nil {
			r.errs.Add("in-process render: ", err)
		} else {
			r.inproc = append(r.inproc, render+encode)
			r.render = append(r.render, render)
			r.encode = append(r.encode, encode)
			r.inprocBytes = ibuf.Len()
		}
		progress("(2) heavy: run %d/%d: master %s, in-process %s (render %s + encode %s)",
			i+1, b.cfg.heavyRuns, benchkit.FmtDur(lat), benchkit.FmtDur(render+encode), benchkit.FmtDur(render), benchkit.FmtDur(encode))
		runtime.GC()
	}
	return r
}

// colourStats counts the distinct colours of img and the share of black
// pixels (the points inside the set).
func colourStats(img *image.RGBA) (int, float64) {
	seen := map[uint32]struct{}{}
	black := 0
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	for y := range h {
		row := img.Pix[y*img.Stride : y*img.Stride+4*w]
		for x := 0; x < len(row); x += 4 {
			c := uint32(row[x]) | uint32(row[x+1])<<8 | uint32(row[x+2])<<16 | uint32(row[x+3])<<24
			seen[c] = struct{}{}
			if c == 0xff000000 {
				black++
			}
		}
	}
	return len(seen), float64(black) / float64(w*h)
}

// downscale averages k x k blocks (for a preview).
func downscale(img *image.RGBA, k int) *image.RGBA {
	w, h := img.Bounds().Dx()/k, img.Bounds().Dy()/k
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			var sum [4]int
			for dy := range k {
				for dx := range k {
					o := img.PixOffset(x*k+dx, y*k+dy)
					for c := range 4 {
						sum[c] += int(img.Pix[o+c])
					}
				}
			}
			o := out.PixOffset(x, y)
			for c := range 4 {
				out.Pix[o+c] = uint8(sum[c] / (k * k))
			}
		}
	}
	return out
}

func (b *bench) save(name string, data []byte) {
	if b.cfg.saveDir == "" {
		return
	}
	p := filepath.Join(b.cfg.saveDir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		progress("save %s: %v", p, err)
		return
	}
	progress("saved %s", p)
}

// ---- (3) policies: the heavy frame streamed as SSE ----

type slaveStat struct {
	Tiles  int     `json:"tiles"`
	BusyMS float64 `json:"busy_ms"`
}

type streamRun struct {
	wall      time.Duration // request to the "done" event
	firstTile time.Duration
	serverMS  float64 // "done".ms
	tiles     int
	slaves    map[string]slaveStat // from "done"
	retried   int                  // tiles that needed more than one attempt
	tileMS    []float64            // per-tile ms, sorted
	identical string
}

// imbalance is max busy / mean busy over the slaves (1.00: perfectly even).
func (s *streamRun) imbalance(ids []string) float64 {
	var sum, mx float64
	for _, id := range ids {
		v := s.slaves[id].BusyMS
		sum += v
		mx = max(mx, v)
	}
	if sum == 0 {
		return 0
	}
	return mx / (sum / float64(len(ids)))
}

type policyResult struct {
	policy string
	runs   []*streamRun
	errs   benchkit.ErrLog
	cpu    benchkit.CPUUse
}

// medianRun is the run with the median wall time (the lower middle).
func (p *policyResult) medianRun() *streamRun {
	if len(p.runs) == 0 {
		return nil
	}
	s := slices.Clone(p.runs)
	slices.SortFunc(s, func(a, b *streamRun) int { return int(a.wall - b.wall) })
	return s[(len(s)-1)/2]
}

type tileEvent struct {
	N        int     `json:"n"`
	OX       int     `json:"ox"`
	OY       int     `json:"oy"`
	W        int     `json:"w"`
	H        int     `json:"h"`
	Slave    string  `json:"slave"`
	MS       float64 `json:"ms"`
	Attempts int     `json:"attempts"`
	PNG      []byte  `json:"png"` // base64 in the JSON
}

type doneEvent struct {
	Tiles  int                  `json:"tiles"`
	MS     float64              `json:"ms"`
	Slaves map[string]slaveStat `json:"slaves"`
}

func (b *bench) runPolicies(ctx context.Context) []*policyResult {
	progress("(3) policies: in-process reference render of the heavy frame")
	ref, err := b.reference()
	if err != nil {
		r := &policyResult{policy: "all"}
		r.errs.Add("in-process render: ", err)
		return []*policyResult{r}
	}
	out := make([]*policyResult, len(policies))
	for i, p := range policies {
		out[i] = &policyResult{policy: p}
	}
	for run := range b.cfg.heavyRuns {
		// Alternate which policy goes first, so a trend in the machine's
		// load does not favour one.
		order := []int{0, 1}
		if run%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			if ctx.Err() != nil {
				return nil
			}
			r := out[i]
			var (
				sr    *streamRun
				tiles []tileEvent
				err   error
			)
			b.c.Measure(&r.cpu, func() {
				sr, tiles, err = b.stream(ctx, b.frameURL("/mandelbrot/stream", heavyFrame, "policy", r.policy))
			})
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				r.errs.Add("", err)
				progress("(3) %s run %d/%d: %v", r.policy, run+1, b.cfg.heavyRuns, err)
				continue
			}
			sr.identical = assemble(tiles, ref)
			tiles = nil
			r.runs = append(r.runs, sr)
			var parts []string
			for _, id := range slaveIDs(sr.slaves) {
				s := sr.slaves[id]
				parts = append(parts, fmt.Sprintf("%s %d tiles %s", id, s.Tiles, benchkit.FmtMS(s.BusyMS)))
			}
			progress("(3) %s run %d/%d: %s, %s; identical: %s", r.policy, run+1, b.cfg.heavyRuns, benchkit.FmtDur(sr.wall), strings.Join(parts, ", "), sr.identical)
			runtime.GC()
		}
	}
	return out
}

// slaveIDs lists slave-1, slave-2 and any other slave that rendered tiles.
func slaveIDs(m map[string]slaveStat) []string {
	ids := []string{"slave-1", "slave-2"}
	var extra []string
	for id := range m {
		if !slices.Contains(ids, id) {
			extra = append(extra, id)
		}
	}
	slices.Sort(extra)
	return append(ids, extra...)
}

// stream reads one GET /mandelbrot/stream to its "done" event.
func (b *bench) stream(ctx context.Context, u string) (*streamRun, []tileEvent, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	t0 := time.Now()
	res, err := b.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return nil, nil, fmt.Errorf("HTTP %d: %s", res.StatusCode, benchkit.Snippet(data))
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return nil, nil, fmt.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	sr := &streamRun{}
	var tiles []tileEvent
	rd := sse.NewReader(res.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("stream ended before its done event (%d tiles in): %w", len(tiles), err)
		}
		switch ev.Name {
		case "tile":
			var t tileEvent
			if err := json.Unmarshal(ev.Data, &t); err != nil {
				return nil, nil, fmt.Errorf("decode tile event: %w", err)
			}
			if len(tiles) == 0 {
				sr.firstTile = time.Since(t0)
			}
			if t.Attempts > 1 {
				sr.retried++
			}
			sr.tileMS = append(sr.tileMS, t.MS)
			tiles = append(tiles, t)
		case "done":
			sr.wall = time.Since(t0)
			var d doneEvent
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				return nil, nil, fmt.Errorf("decode done event: %w", err)
			}
			sr.serverMS, sr.tiles, sr.slaves = d.MS, d.Tiles, d.Slaves
			if d.Tiles != len(tiles) {
				return nil, nil, fmt.Errorf("done event says %d tiles, %d tile events came", d.Tiles, len(tiles))
			}
			slices.Sort(sr.tileMS)
			return sr, tiles, nil
		case "error":
			return nil, nil, fmt.Errorf("error event after %d tiles: %s", len(tiles), benchkit.Snippet(ev.Data))
		}
	}
}

// assemble pastes the streamed tiles into a frame and compares it with ref:
// "yes" when every pixel is covered once and matches.
func assemble(tiles []tileEvent, ref *image.RGBA) string {
	frame := image.NewRGBA(ref.Bounds())
	covered := 0
	for _, t := range tiles {
		img, err := mandel.DecodePNG(t.PNG)
		if err != nil {
			return fmt.Sprintf("no (tile %d at %d,%d: %v)", t.N, t.OX, t.OY, err)
		}
		if img.Bounds().Dx() != t.W || img.Bounds().Dy() != t.H {
			return fmt.Sprintf("no (tile %d at %d,%d is %v, event says %dx%d)", t.N, t.OX, t.OY, img.Bounds().Size(), t.W, t.H)
		}
		draw.Draw(frame, image.Rect(t.OX, t.OY, t.OX+t.W, t.OY+t.H), img, image.Point{}, draw.Src)
		covered += t.W * t.H
	}
	if covered != ref.Bounds().Dx()*ref.Bounds().Dy() {
		return fmt.Sprintf("no (tiles cover %d pixels, the frame has %d)", covered, ref.Bounds().Dx()*ref.Bounds().Dy())
	}
	return compareImages(frame, ref)
}

// ---- --profile-dir ----

// profile collects CPU profiles of the services while they render the seed
// view, then the heavy frame, back to back; it returns lines for the report.
func (b *bench) profile(ctx context.Context) []string {
	secs := b.cfg.profileSeconds
	pc := &http.Client{Timeout: time.Duration(secs)*time.Second + time.Minute}
	var out []string
	for _, ph := range []struct{ name, url string }{
		{"seed", b.c.MasterURL + "/mandelbrot/render"},
		{"heavy", b.frameURL("/mandelbrot/render", heavyFrame)},
	} {
		if ctx.Err() != nil {
			return out
		}
		progress("profiling %s renders for %ds", ph.name, secs)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var saved []string
		stop := make(chan struct{})
		for _, p := range b.c.Procs() {
			base := b.c.PprofURLs[p.Name()]
			if base == "" {
				continue
			}
			wg.Go(func() {
				path := filepath.Join(b.cfg.profileDir, ph.name+"-"+p.Name()+".pprof")
				err := fetchTo(ctx, pc, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs), path)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					saved = append(saved, fmt.Sprintf("%s: %v", path, err))
					return
				}
				saved = append(saved, path)
			})
		}
		go func() {
			wg.Wait()
			close(stop)
		}()
		renders, errs := 0, 0
		var buf bytes.Buffer
		deadline := time.Now().Add(time.Duration(secs) * time.Second)
	loop:
		for ctx.Err() == nil && time.Now().Before(deadline) {
			select {
			case <-stop:
				break loop
			default:
			}
			if _, _, err := b.get(ctx, ph.url, &buf); err != nil {
				errs++
			} else {
				renders++
			}
		}
		<-stop
		slices.Sort(saved)
		out = append(out, fmt.Sprintf("%s: %d renders (%d errors) during %ds: %s", ph.name, renders, errs, secs, strings.Join(saved, ", ")))
	}
	return out
}

func fetchTo(ctx context.Context, c *http.Client, u, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", res.StatusCode, benchkit.Snippet(data))
	}
	return os.WriteFile(path, data, 0o644)
}
