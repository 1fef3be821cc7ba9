package browser

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/calclab/calclab/internal/testcluster"
	"github.com/calclab/calclab/services/api"
)

func needChrome(t *testing.T) {
	t.Helper()
	if chromeBin == "" {
		msg := "Chromium is not installed (no chromium or chromium-browser in PATH); install it with: apt-get install -y chromium"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// overflowJS lists the elements of the dashboard and explorer that do not
// fit: text cut without an ellipsis (scrollWidth past clientWidth with
// text-overflow other than ellipsis), or a box that sticks out of its card.
const overflowJS = `(() => {
  const bad = [];
  const inside = (el, box) => {
    const r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
    return r.left >= b.left - 0.5 && r.right <= b.right + 0.5;
  };
  for (const el of document.querySelectorAll('.slave-id .sid, .stat-value, .stat-label, .table td')) {
    const cs = getComputedStyle(el);
    if (el.scrollWidth > el.clientWidth + 1 && cs.textOverflow !== 'ellipsis') {
      bad.push('cut without ellipsis: ' + el.className + ' "' + el.textContent + '"');
    }
  }
  for (const el of document.querySelectorAll('.slave-id .sid')) {
    if (el.scrollWidth > el.clientWidth + 1 && !el.closest('[title]')) bad.push('cut id without a title: ' + el.textContent);
  }
  for (const el of document.querySelectorAll('.stat, #spark, .slaves, .ctl-buttons .btn')) {
    const panel = el.closest('.panel');
    if (!inside(el, panel)) bad.push('outside its card: ' + (el.id || el.className));
  }
  const spark = document.getElementById('spark');
  if (!inside(spark, spark.closest('.throughput'))) bad.push('sparkline outside its card');
  return bad;
})()`

// TestUIFitsAt1400And400 checks that nothing on the page is clipped mid
// character or drawn past its card, at a desktop and a phone width, with a
// slave whose id is longer than its column.
func TestUIFitsAt1400And400(t *testing.T) {
	needChrome(t)
	m := testcluster.StartMaster(t, t.TempDir(), "--log-level", "warn")
	long := "slave-with-a-very-long-identifier-for-its-column-1"
	testcluster.StartSlave(t, m.URL, long, "--capacity", "4", "--log-level", "warn")
	testcluster.StartSlave(t, m.URL, "slave-2", "--capacity", "4", "--log-level", "warn")
	testcluster.WaitSlaves(t, m.URL, map[string]string{long: api.SlaveFree, "slave-2": api.SlaveFree})
	for _, width := range []int{1400, 400} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			ctx, _ := newBrowser(t, width, 1200)
			do(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(m.URL+"/"))
			waitRender(t, ctx, 0)
			waitFor[bool](t, ctx, 10*time.Second, "the slaves table", `document.querySelectorAll('#slaves-body tr[data-slave]').length === 2`)
			if bad := eval[[]string](t, ctx, overflowJS); len(bad) > 0 {
				t.Errorf("at %d px:\n  %s", width, strings.Join(bad, "\n  "))
			}
			// The long id is shown with an ellipsis and whole in its tooltip.
			title := eval[string](t, ctx, `document.querySelector('#slaves-body .slave-id').closest('[title]').getAttribute('title')`)
			if !strings.Contains(title, "slave-") {
				t.Errorf("slave id cell has no tooltip naming the slave: %q", title)
			}
			// Tiles by slave is on by default.
			if hidden := eval[bool](t, ctx, `document.getElementById('overlay').hidden`); hidden {
				t.Error("the tiles-by-slave overlay is off on a first visit; want it on by default")
			}
		})
	}
}

// TestUIHistoryKeepsErrorExpression: an expression that fails keeps its
// whole text in the calculator history ("(1 + 2" showed only "(").
func TestUIHistoryKeepsErrorExpression(t *testing.T) {
	needChrome(t)
	m := testcluster.StartMaster(t, t.TempDir(), "--log-level", "warn")
	testcluster.StartSlave(t, m.URL, "slave-1", "--log-level", "warn")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	for _, width := range []int{1400, 400} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			ctx, _ := newBrowser(t, width, 1200)
			do(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(m.URL+"/"))
			eval[bool](t, ctx, `(() => { const i = document.getElementById('calc-input'); i.value = '(1 + 2'; document.getElementById('calc-form').requestSubmit(); return true; })()`)
			waitFor[bool](t, ctx, 10*time.Second, "the error row", `!!document.querySelector('#calc-history li.err')`)
			got := eval[[]any](t, ctx, `(() => { const e = document.querySelector('#calc-history li.err .h-expr');
			  return [e.textContent, e.scrollWidth <= e.clientWidth + 1]; })()`)
			if got[0] != "(1 + 2" || got[1] != true {
				t.Errorf("history row of a failed expression shows %q (fits: %v), want the whole \"(1 + 2\"", got[0], got[1])
			}
		})
	}
}

// TestUIRejectsOutOfRangeHashValues: a shared link with iter=1000000 (more
// than the master allows) is not sent to the master; the page says which
// value it ignored and draws the default instead of a raw error over black.
func TestUIRejectsOutOfRangeHashValues(t *testing.T) {
	needChrome(t)
	m := testcluster.StartMaster(t, t.TempDir(), "--log-level", "warn")
	testcluster.StartSlave(t, m.URL, "slave-1", "--log-level", "warn")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	ctx, _ := newBrowser(t, 1280, 900)
	do(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(m.URL+"/#iter=1000000&cmap=unicorn&cx=-0.5"))
	waitRender(t, ctx, 0)
	v := eval[view](t, ctx, `window.calclab.view`)
	if v.Iter != 200 || v.Cmap != "classic" || v.CX != -0.5 {
		t.Errorf("view = %+v, want the default iter 200 and colour map classic, and cx -0.5 from the link", v)
	}
	note := eval[string](t, ctx, `document.getElementById('view-note').hidden ? '' : document.getElementById('view-note').textContent`)
	for _, want := range []string{"iter=1000000 ignored", "100,000", "cmap=unicorn ignored"} {
		if !strings.Contains(note, want) {
			t.Errorf("note %q does not say %q", note, want)
		}
	}
	if hash := eval[string](t, ctx, `location.hash`); strings.Contains(hash, "1000000") {
		t.Errorf("URL still carries the rejected value: %s", hash)
	}
}

// TestUIRecoversWhenASlaveRegisters: a render that failed with "no healthy
// slave" offers Retry, and runs again by itself once a slave registers; the
// header is not green while a registered slave is down.
func TestUIRecoversWhenASlaveRegisters(t *testing.T) {
	needChrome(t)
	m := testcluster.StartMaster(t, t.TempDir(), "--log-level", "warn", "--health-interval", "200ms")
	ctx, _ := newBrowser(t, 1280, 900)
	do(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(m.URL+"/"))
	waitFor[bool](t, ctx, 20*time.Second, "the render to fail", `document.body.dataset.renderState === 'error'`)
	if msg := eval[string](t, ctx, `document.getElementById('stage-msg').textContent`); !strings.Contains(msg, "no healthy slave") {
		t.Fatalf("stage message %q, want the master's \"no healthy slave\"", msg)
	}
	if !eval[bool](t, ctx, `!!document.querySelector('#stage-msg #retry')`) {
		t.Error("no Retry button after a failed render")
	}
	seq := eval[int](t, ctx, `window.calclab.lastRender.seq`)
	s1 := testcluster.StartSlave(t, m.URL, "slave-1", "--log-level", "warn")
	testcluster.WaitSlaves(t, m.URL, map[string]string{"slave-1": api.SlaveFree})
	lr := waitRender(t, ctx, seq)
	if lr.Slaves["slave-1"].Tiles == 0 {
		t.Errorf("the retried render drew no tile on slave-1: %+v", lr)
	}
	waitFor[bool](t, ctx, 10*time.Second, "a green header", `document.getElementById('conn').dataset.state === 'ok'`)

	// A registered slave that goes down turns the header from green.
	s1.Kill()
	waitFor[bool](t, ctx, 20*time.Second, "the header to leave green", `document.getElementById('conn').dataset.state !== 'ok'`)
	if text := eval[string](t, ctx, `document.getElementById('conn-text').textContent`); !strings.Contains(text, "slave-1") {
		t.Errorf("header %q does not name the slave that is down", text)
	}
}

// TestUIAPIPageRendersEveryOperation: the header's "API" link opens a
// human-readable reference served by the master itself (no CDN): every
// operation of /openapi.json is on it, and the page loads nothing from
// another origin.
func TestUIAPIPageRendersEveryOperation(t *testing.T) {
	needChrome(t)
	m := testcluster.StartMaster(t, t.TempDir(), "--log-level", "warn")
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	res, err := http.Get(m.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(res.Body).Decode(&doc)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, item := range doc.Paths {
		for k := range item {
			switch k {
			case "get", "post", "put", "patch", "delete":
				want++
			}
		}
	}
	ctx, logs := newBrowser(t, 1280, 900)
	do(t, ctx, 20*time.Second, "open the page", chromedp.Navigate(m.URL+"/"))
	href := eval[string](t, ctx, `[...document.querySelectorAll('header a')].find((a) => a.textContent.trim() === 'API').href`)
	do(t, ctx, 20*time.Second, "follow the API link", chromedp.Navigate(href))
	got := waitFor[string](t, ctx, 10*time.Second, "the operations", `document.body.dataset.apiOps`)
	if got != fmt.Sprint(want) {
		t.Errorf("API page rendered %s operations, the document has %d", got, want)
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('.api-op').length`); n != want {
		t.Errorf("%d operation sections, want %d", n, want)
	}
	foreign := eval[[]string](t, ctx, `performance.getEntriesByType('resource').map((e) => e.name).filter((u) => new URL(u).origin !== location.origin)`)
	if len(foreign) > 0 {
		t.Errorf("the API page loaded from other origins: %v", foreign)
	}
	if errs := logs.errors(); len(errs) > 0 {
		t.Errorf("console errors: %v", errs)
	}
}
