package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/draw"
	"net/http"
	"testing"
	"time"

	"github.com/calclab/calclab/internal/sse"
	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/mandel"
)

// heavy is a boundary view that takes a while to render on two slaves.
var heavy = mandel.Frame{CX: -0.743643887, CY: 0.131825904, Scale: 2e-7, Width: 640, Height: 480, MaxIter: 3000}

const heavyQuery = "cx=-0.743643887&cy=0.131825904&scale=2e-7&width=640&height=480&max_iter=3000&tile=32"

// readEvents calls each with the stream's events until it returns false or
// the stream ends.
func readEvents(res *http.Response, each func(sse.Event) bool) {
	rd := sse.NewReader(res.Body)
	for {
		ev, err := rd.Next()
		if err != nil || !each(ev) {
			return
		}
	}
}

// rendered is what a heavy render's stream delivered.
type rendered struct {
	img                      *image.RGBA
	tiles, onSlave2, retried int // tiles, those from slave-2, those tried more than once
	done                     bool
}

// renderHeavy streams the heavy frame from the master into a picture and
// calls after, when set, after each tile with the tiles slave-2 sent so far.
func renderHeavy(t *testing.T, masterURL string, after func(onSlave2 int)) rendered {
	t.Helper()
	res, err := http.Get(masterURL + "/mandelbrot/stream?" + heavyQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := rendered{img: image.NewRGBA(image.Rect(0, 0, heavy.Width, heavy.Height))}
	readEvents(res, func(ev sse.Event) bool {
		switch ev.Name {
		case "tile":
			var tl struct {
				OX, OY, W, H, Attempts int
				Slave, PNG             string
			}
			if err := json.Unmarshal(ev.Data, &tl); err != nil {
				t.Fatalf("tile event: %v", err)
			}
			raw, _ := base64.StdEncoding.DecodeString(tl.PNG)
			part, err := mandel.DecodePNG(raw)
			if err != nil {
				t.Fatalf("tile PNG: %v", err)
			}
			draw.Draw(r.img, image.Rect(tl.OX, tl.OY, tl.OX+tl.W, tl.OY+tl.H), part, image.Point{}, draw.Src)
			r.tiles++
			if tl.Slave == "slave-2" {
				r.onSlave2++
			}
			if tl.Attempts > 1 {
				r.retried++
			}
			if after != nil {
				after(r.onSlave2)
			}
		case "done":
			r.done = true
			return false
		case "error":
			t.Fatalf("render failed: %s", ev.Data)
		}
		return true
	})
	return r
}

// checkHeavy fails the test when img is not the heavy frame rendered in
// this process.
func checkHeavy(t *testing.T, img *image.RGBA, what string) {
	t.Helper()
	exp, _ := mandel.RenderFrame(context.Background(), heavy, 0)
	if !bytes.Equal(img.Pix, exp.Pix) {
		t.Fatalf("picture %s differs from a single-process render", what)
	}
}

// TestSlaveDiesMidRender kills a slave with SIGKILL while a frame streams:
// its tiles run on the other slave and the picture is complete and correct.
func TestSlaveDiesMidRender(t *testing.T) {
	m := startMaster(t, t.TempDir())
	startSlave(t, m.URL, "slave-1")
	s2 := startSlave(t, m.URL, "slave-2")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})

	killed := false
	r := renderHeavy(t, m.URL, func(onSlave2 int) {
		if onSlave2 >= 3 && !killed {
			s2.Kill()
			killed = true
		}
	})
	if !killed || !r.done {
		t.Fatalf("killed=%v done=%v after %d tiles", killed, r.done, r.tiles)
	}
	t.Logf("%d tiles, %d from slave-2 before it died, %d ran again elsewhere", r.tiles, r.onSlave2, r.retried)
	checkHeavy(t, r.img, "after a slave died mid-render")
}

// TestClientGoingAwayCancelsTiles closes a heavy render's stream early and
// checks that the slaves stop receiving its tiles.
func TestClientGoingAwayCancelsTiles(t *testing.T) {
	m := startMaster(t, t.TempDir())
	s1 := startSlave(t, m.URL, "slave-1")
	s2 := startSlave(t, m.URL, "slave-2")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree, "slave-2": api.SlaveFree})
	total := len(heavy.Tiles(32, 32))

	res, err := http.Get(m.URL + "/mandelbrot/stream?" + heavyQuery)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	readEvents(res, func(ev sse.Event) bool {
		if ev.Name == "tile" {
			got++
		}
		return got < 2
	})
	res.Body.Close()
	rendered := func() float64 {
		return metric(t, s1.URL, "calclab_slave_tiles_total") + metric(t, s2.URL, "calclab_slave_tiles_total")
	}
	time.Sleep(time.Second)
	a := rendered()
	time.Sleep(time.Second)
	b := rendered()
	if a != b || b >= float64(total) {
		t.Fatalf("after the client left, slaves rendered %v then %v of %d tiles: the render was not cancelled", a, b, total)
	}
	deadline := time.Now().Add(5 * time.Second)
	for metric(t, m.URL, "calclab_queue_depth") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("abandoned tiles still queued")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
