package master_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/draw"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/sse"
	"github.com/calclab/calclab/services/mandel"
	"github.com/calclab/calclab/services/master"
)

func decodePNG(t *testing.T, data []byte) *image.RGBA {
	t.Helper()
	img, err := mandel.DecodePNG(data)
	if err != nil {
		t.Fatalf("not a PNG (%d bytes): %v", len(data), err)
	}
	return img
}

func want(t *testing.T, f mandel.Frame) *image.RGBA {
	t.Helper()
	img, err := mandel.RenderFrame(context.Background(), f, 0)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestRenderMatchesSingleProcessRender(t *testing.T) {
	c := startCluster(t, 2, nil)
	tests := []struct {
		name     string
		query    string
		frame    mandel.Frame
		minBytes int // the PNG is at least this long
	}{
		{"seed default view", "", mandel.SeedFrame(), 0},
		{"boundary, uneven tiles", "cx=-0.7436&cy=0.1318&scale=0.00002&width=333&height=211&max_iter=600&colormap=fire&tile=64",
			mandel.Frame{CX: -0.7436, CY: 0.1318, Scale: 0.00002, Width: 333, Height: 211, MaxIter: 600, Colormap: "fire"}, 0},
		{"round-robin policy", "width=120&height=90&policy=round-robin",
			mandel.Frame{Scale: 3.0 / 120, Width: 120, Height: 90, MaxIter: 30}, 0},
		{"PNG over 1 MiB (the master collects it in 1 MiB pieces)", "cx=-0.743644786&cy=0.1318252536&scale=6.25e-07&width=1024&height=640&max_iter=300",
			mandel.Frame{CX: -0.743644786, CY: 0.1318252536, Scale: 6.25e-07, Width: 1024, Height: 640, MaxIter: 300}, 1 << 20},
		{"wider than 4096 (bands are whole rows)", "cx=-0.5&scale=0.0005&width=6000&height=21&max_iter=40",
			mandel.Frame{CX: -0.5, Scale: 0.0005, Width: 6000, Height: 21, MaxIter: 40}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, http.MethodGet, c.master+"/mandelbrot/render?"+tc.query, "", nil, nil)
			if r.code != 200 || r.header.Get("Content-Type") != "image/png" {
				t.Fatalf("%d %s %q", r.code, r.header.Get("Content-Type"), r.body[:min(len(r.body), 200)])
			}
			if len(r.body) < tc.minBytes {
				t.Fatalf("PNG of %d bytes, the case needs at least %d", len(r.body), tc.minBytes)
			}
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
				t.Fatalf("Content-Length %q for a %d-byte PNG", cl, len(r.body))
			}
			got := decodePNG(t, r.body)
			exp := want(t, tc.frame)
			if !bytes.Equal(got.Pix, exp.Pix) {
				t.Fatal("assembled frame differs from a single-process render of the same view")
			}
			if !strings.Contains(r.header.Get("X-Render-Slaves"), "slave-") {
				t.Fatalf("X-Render-Slaves = %q", r.header.Get("X-Render-Slaves"))
			}
		})
	}
}

func TestConcurrentRendersEachGetTheirOwnPicture(t *testing.T) {
	c := startCluster(t, 2, nil)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := mandel.Frame{CX: -0.5 + 0.1*float64(i), Scale: 0.01, Width: 160, Height: 120, MaxIter: 50 + 10*i}
			q := "cx=" + ftoa(f.CX) + "&scale=0.01&width=160&height=120&max_iter=" + itoa(f.MaxIter)
			r := call(t, http.MethodGet, c.master+"/mandelbrot/render?"+q, "", nil, nil)
			if r.code != 200 {
				t.Errorf("render %d: %d", i, r.code)
				return
			}
			if !bytes.Equal(decodePNG(t, r.body).Pix, want(t, f).Pix) {
				t.Errorf("render %d got someone else's pixels", i)
			}
		}()
	}
	wg.Wait()
}

func TestStreamTilesAssembleToTheRender(t *testing.T) {
	c := startCluster(t, 2, nil)
	res, err := http.Get(c.master + "/mandelbrot/stream?width=200&height=150&max_iter=80&tile=48")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	img := image.NewRGBA(image.Rect(0, 0, 200, 150))
	var start struct{ Tiles int }
	var done struct {
		Tiles  int
		Slaves map[string]struct{ Tiles int }
	}
	tiles := 0
	rd := sse.NewReader(res.Body)
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		switch ev.Name {
		case "start":
			json.Unmarshal(ev.Data, &start)
		case "tile":
			var tl struct {
				OX, OY, W, H int
				Slave        string
				PNG          string
			}
			json.Unmarshal(ev.Data, &tl)
			raw, _ := base64.StdEncoding.DecodeString(tl.PNG)
			part := decodePNG(t, raw)
			if part.Bounds().Dx() != tl.W || part.Bounds().Dy() != tl.H || tl.Slave == "" {
				t.Fatalf("tile event %+v does not match its PNG %v", tl, part.Bounds())
			}
			draw.Draw(img, image.Rect(tl.OX, tl.OY, tl.OX+tl.W, tl.OY+tl.H), part, image.Point{}, draw.Src)
			tiles++
		case "done":
			json.Unmarshal(ev.Data, &done)
		case "error":
			t.Fatalf("stream error: %s", ev.Data)
		}
	}
	if start.Tiles == 0 || tiles != start.Tiles || done.Tiles != tiles {
		t.Fatalf("start announced %d tiles, got %d tile events, done says %d", start.Tiles, tiles, done.Tiles)
	}
	sum := 0
	for _, s := range done.Slaves {
		sum += s.Tiles
	}
	if sum != tiles || len(done.Slaves) == 0 {
		t.Fatalf("per-slave counts %+v do not add up to %d", done.Slaves, tiles)
	}
	exp := want(t, mandel.Frame{Scale: 3.0 / 200, Width: 200, Height: 150, MaxIter: 80})
	if !bytes.Equal(img.Pix, exp.Pix) {
		t.Fatal("streamed tiles do not assemble into the frame")
	}
}

func TestRenderBadInput(t *testing.T) {
	c := startCluster(t, 1, nil)
	tests := []struct {
		query string
		code  int
		field string
	}{
		{"width=0", 400, "width"},
		{"width=abc", 400, "width"},
		{"scale=-1", 400, "scale"},
		{"cx=NaN", 400, "cx"},
		{"max_iter=0", 400, "max_iter"},
		{"max_iter=100001", 413, "max_iter"},
		{"width=5000&height=5000", 413, ""},
		{"colormap=rainbow-unicorn", 400, "colormap"},
		{"policy=random", 400, "policy"},
		{"tile=3", 400, "tile"},
		// 4096 x 4096 x 100000 = 1.7e12 iterations (~50 minutes of a small
		// cluster) passed every other limit: now the work budget says no.
		{"width=4096&height=4096&max_iter=100000", 413, "max_iter"},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			for _, path := range []string{"/mandelbrot/render?", "/mandelbrot/stream?"} {
				var e map[string]string
				r := call(t, http.MethodGet, c.master+path+tc.query, "", nil, &e)
				if r.code != tc.code || e["error"] == "" || (tc.field != "" && e["field"] != tc.field) {
					t.Fatalf("%s%s: %d %s; want %d naming %q", path, tc.query, r.code, r.body, tc.code, tc.field)
				}
			}
		})
	}
}

// TestRenderWorkInFlightIsBounded: a render over the budget of work in
// flight is refused with 503 and Retry-After while another holds the
// budget, naming the limit, and admitted once that one is done.
func TestRenderWorkInFlightIsBounded(t *testing.T) {
	c := startCluster(t, 1, func(cfg *master.Config) {
		cfg.MandelMaxWorkInFlight = 3e9 // one render of 2e9 at a time
	})
	const heavy = "/mandelbrot/stream?width=2000&height=1000&max_iter=1000&cx=-0.7436447860&cy=0.1318252536&scale=1.5e-7"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.master+heavy, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("first render: %d", res.StatusCode)
	}
	var e map[string]string
	r := call(t, http.MethodGet, c.master+"/mandelbrot/render?width=2000&height=1000&max_iter=1000", "", nil, &e)
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(e["error"], "--mandel-max-work-in-flight") {
		t.Fatalf("second heavy render while the first runs: %d %s (Retry-After %q)", r.code, r.body, r.header.Get("Retry-After"))
	}
	// A small render still fits beside it.
	if r := call(t, http.MethodGet, c.master+"/mandelbrot/render?width=200&height=200&max_iter=100", "", nil, nil); r.code != http.StatusOK {
		t.Fatalf("small render beside the heavy one: %d %s", r.code, r.body)
	}
	cancel()
	res.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := call(t, http.MethodGet, c.master+"/mandelbrot/render?width=2000&height=1000&max_iter=1000&scale=0.01", "", nil, nil)
		if r.code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the budget was not given back after the client left: %d %s", r.code, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSeedWorkerCallOnSlave(t *testing.T) {
	c := startCluster(t, 1, nil)
	var out struct{ Image string }
	r := call(t, http.MethodGet, c.slaves[0]+"/?max_iteration=30&start_position_x=-1.5&start_position_y=1.5&quantize_length=0.3", "", nil, &out)
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	raw, err := base64.StdEncoding.DecodeString(out.Image)
	if err != nil {
		t.Fatal(err)
	}
	got := decodePNG(t, raw)
	exp, _ := mandel.RenderSeed(context.Background(), mandel.SeedRequest{MaxIteration: 30, StartX: -1.5, StartY: 1.5, Length: 0.3})
	if got.Bounds().Dx() != 50 || got.Bounds().Dy() != 50 || !bytes.Equal(got.Pix, exp.Pix) {
		t.Fatalf("seed tile: %v, want the seed's 50x50 tile at (-1.5, 1.5) side 0.3", got.Bounds())
	}
	// The seed crashed every worker past 501 iterations.
	for _, it := range []string{"501", "502", "5000"} {
		r := call(t, http.MethodGet, c.slaves[0]+"/?max_iteration="+it+"&start_position_x=-0.75&start_position_y=0.1&quantize_length=0.05", "", nil, &out)
		if r.code != 200 {
			t.Fatalf("max_iteration=%s: %d %s", it, r.code, r.body)
		}
	}
	var e map[string]string
	if r := call(t, http.MethodGet, c.slaves[0]+"/?max_iteration=-1&start_position_x=0&start_position_y=0&quantize_length=1", "", nil, &e); r.code != 400 || e["error"] == "" {
		t.Fatalf("negative iterations: %d %s", r.code, r.body)
	}
}

func ftoa(f float64) string { b, _ := json.Marshal(f); return string(b) }
func itoa(i int) string     { b, _ := json.Marshal(i); return string(b) }
