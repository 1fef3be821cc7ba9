package slaveclient

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/dispatch"
	"github.com/calclab/calclab/services/mandel"
)

func target(t *testing.T, h http.HandlerFunc) dispatch.Target {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return dispatch.Target{ID: "s", URL: srv.URL}
}

func answer(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write([]byte(body))
	}
}

// classify says how the dispatcher will read err.
func classify(err error) string {
	switch {
	case err == nil:
		return "ok"
	case dispatch.IsPermanent(err):
		return "job"
	case dispatch.IsSuspect(err):
		return "suspect"
	default:
		return "slave"
	}
}

// TestAnAnswerThatIsNotAWellFormedResultIsTheSlavesFault: 200 {}, garbage,
// a redirect, a 404 or a wrong batch count make the task run elsewhere and
// count against the slave; a refusal is the job's; a timeout or a 5xx is
// suspect; an evaluation error is an answer.
func TestAnAnswerThatIsNotAWellFormedResultIsTheSlavesFault(t *testing.T) {
	var followed atomic.Bool
	elsewhere := target(t, func(w http.ResponseWriter, _ *http.Request) {
		followed.Store(true)
		answer(200, `{"result": 1337}`)(w, nil)
	})
	c := New(Config{TaskTimeout: 200 * time.Millisecond})
	compute := func(tg dispatch.Target) (api.ComputeResponse, error) {
		return c.Compute(context.Background(), tg, api.ComputeRequest{ID: "t1", Expression: "2+2"}, "rid")
	}
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		evalErr bool
	}{
		{"result", answer(200, `{"id": "t1", "result": 4}`), "ok", false},
		{"evaluation error is an answer", answer(422, `{"id": "t1", "error": "division by zero"}`), "ok", true},
		{"200 {} is the slave's", answer(200, `{}`), "slave", false},
		{"garbage is the slave's", answer(200, `4`+"\x00garbage"), "slave", false},
		{"result and error is the slave's", answer(200, `{"result": 4, "error": "x"}`), "slave", false},
		{"answer for another task is the slave's", answer(200, `{"id": "t2", "result": 4}`), "slave", false},
		{"redirect is not followed, the slave's", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere.URL+"/compute", http.StatusTemporaryRedirect)
		}, "slave", false},
		{"404 is the slave's", answer(404, `{"error": "no such endpoint"}`), "slave", false},
		{"503 is the slave's", answer(503, `{"error": "shutting down"}`), "slave", false},
		{"500 is suspect", answer(500, `{"error": "internal"}`), "suspect", false},
		{"422 without a verdict is the job's", answer(422, `{"error": ""}`), "job", false},
		{"400 is the job's", answer(400, `{"error": "malformed JSON"}`), "job", false},
		{"413 is the job's", answer(413, `{"error": "too large"}`), "job", false},
		{"hanging is suspect (timeout)", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // the server sees the client leave once the body is read
			<-r.Context().Done()
		}, "suspect", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := compute(target(t, tc.handler))
			if got := classify(err); got != tc.want {
				t.Fatalf("classified %s (%v), want %s", got, err, tc.want)
			}
			if tc.evalErr != (resp.Error != "") {
				t.Fatalf("evaluation error %q, want one: %v", resp.Error, tc.evalErr)
			}
		})
	}
	if followed.Load() {
		t.Fatal("the client followed a slave's redirect")
	}
}

func TestConnectionRefusedIsTheSlavesFault(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = New(Config{}).Compute(context.Background(), dispatch.Target{ID: "gone", URL: "http://" + addr}, api.ComputeRequest{Expression: "1"}, "")
	if classify(err) != "slave" {
		t.Fatalf("refused connection classified %s (%v), want slave", classify(err), err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindTransport {
		t.Fatalf("error %v, want a transport Error", err)
	}
}

func TestCallerGivingUpIsNobodysFault(t *testing.T) {
	tg := target(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body); <-r.Context().Done() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := New(Config{TaskTimeout: 5 * time.Second}).Compute(ctx, tg, api.ComputeRequest{Expression: "1"}, "")
	if _, ok := FaultOf(err); ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("caller's deadline: %v, want context.DeadlineExceeded with no fault", err)
	}
}

func TestBatchAnswerMustMatchTheRequest(t *testing.T) {
	c := New(Config{})
	req := api.ComputeBatchRequest{Expressions: []string{"1", "1/0"}}
	tests := []struct {
		name, body, want string
	}{
		{"well formed", `{"results": [{"result": 1}, {"error": "division by zero"}]}`, "ok"},
		{"wrong count", `{"results": [{"result": 1}]}`, "slave"},
		{"empty", `{}`, "slave"},
		{"item with neither", `{"results": [{"result": 1}, {}]}`, "slave"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ComputeBatch(context.Background(), target(t, answer(200, tc.body)), req, "")
			if got := classify(err); got != tc.want {
				t.Fatalf("classified %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestTileAnswerIsChecked(t *testing.T) {
	tile := mandel.Tile{X0: -1, Y0: 1, Step: 0.1, Width: 4, Height: 2, MaxIter: 10}
	c := New(Config{})
	tests := []struct {
		name, format, body, want string
		code                     int
	}{
		{"raw of the right size", FormatRaw, string(make([]byte, 32)), "ok", 200},
		{"raw of the wrong size", FormatRaw, string(make([]byte, 31)), "slave", 200},
		{"png that is not a PNG", FormatPNG, "hello", "slave", 200},
		{"band", FormatBand, "\x00\x00\x00\x01\x02\x00\x00\x00\xff\xff", "ok", 200},
		{"band cut short", FormatBand, "\x00\x00\x00\x01\x02\x00\x00\x00\xff", "slave", 200},
		{"band too short to be one", FormatBand, "\x00\x00\xff\xff", "slave", 200},
		{"refused tile", FormatRaw, `{"error": "too large"}`, "job", 413},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Tile(context.Background(), target(t, answer(tc.code, tc.body)), tile, tc.format, "")
			if got := classify(err); got != tc.want {
				t.Fatalf("classified %s (%v), want %s", got, err, tc.want)
			}
		})
	}
}

func TestHealthMustAnswerAsACalclabSlave(t *testing.T) {
	c := New(Config{})
	tests := []struct {
		name, body string
		code       int
		ok         bool
	}{
		{"slave", `{"role": "slave", "status": "ok", "version": "0.1.0"}`, 200, true},
		{"master", `{"role": "master", "status": "ok"}`, 200, false},
		{"some web server", `<html>hello</html>`, 200, false},
		{"draining slave", `{"role": "slave", "status": "draining"}`, 503, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Health(context.Background(), target(t, answer(tc.code, tc.body)))
			if (err == nil) != tc.ok {
				t.Fatalf("health: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}
