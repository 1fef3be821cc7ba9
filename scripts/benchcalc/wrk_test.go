package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseWrkDur(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "126.00us", want: 126 * time.Microsecond},
		{in: "0.89ms", want: 890 * time.Microsecond},
		{in: "19.63ms", want: 19630 * time.Microsecond},
		{in: "3.10s", want: 3100 * time.Millisecond},
		{in: "1.50m", want: 90 * time.Second},
		{in: "1.00h", want: time.Hour},
		{in: "12", bad: true},
		{in: "ms", bad: true},
		{in: "-1.00ms", bad: true},
		{in: "1.0xs", bad: true},
	} {
		got, err := parseWrkDur(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseWrkDur(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseWrkDur(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func readSample(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestParseWrk(t *testing.T) {
	ok := readSample(t, "wrk-ok.txt")
	errs := readSample(t, "wrk-errors.txt")
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	for _, tc := range []struct {
		name    string
		out     string
		want    wrkResult
		wantErr string
	}{
		{
			name: "clean run",
			out:  ok,
			want: wrkResult{requests: 57253, runtime: 2100 * time.Millisecond, reqPerSec: 27249.10,
				pcts: map[float64]time.Duration{50: ms(0.89), 75: ms(1.40), 90: ms(2.66), 99: ms(19.63)}},
		},
		{
			name: "non-2xx and socket errors",
			out:  errs,
			want: wrkResult{requests: 63376, runtime: 3100 * time.Millisecond, reqPerSec: 20471.68,
				pcts:    map[float64]time.Duration{50: 126 * time.Microsecond, 75: 501 * time.Microsecond, 90: ms(1.07), 99: ms(3.24)},
				timeout: 32, non2xx: 21124},
		},
		{name: "no latency distribution", out: strings.Replace(ok, "Latency Distribution", "", 1), wantErr: "no latency distribution"},
		{name: "no requests line", out: strings.Replace(ok, "requests in", "reqs in", 1), wantErr: "requests in"},
		{name: "no rate", out: strings.Replace(ok, "Requests/sec:", "Req/s:", 1), wantErr: "Requests/sec"},
		{name: "connection refused", out: "unable to connect to 127.0.0.1:18090 Connection refused\n", wantErr: "requests in"},
		{name: "bad socket errors", out: strings.Replace(errs, "timeout 32", "timeout x", 1), wantErr: "Socket errors"},
		{name: "unknown socket error", out: strings.Replace(errs, "timeout 32", "reset 32", 1), wantErr: "unknown socket error"},
		{name: "bad percentile", out: strings.Replace(ok, "0.89ms", "0.89xx", 1), wantErr: "latency line"},
		{name: "empty", out: "", wantErr: "requests in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseWrk([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			w := tc.want
			if got.requests != w.requests || got.runtime != w.runtime || got.reqPerSec != w.reqPerSec ||
				got.connect != w.connect || got.read != w.read || got.write != w.write || got.timeout != w.timeout || got.non2xx != w.non2xx {
				t.Errorf("got %+v\nwant %+v", *got, w)
			}
			if len(got.pcts) != len(w.pcts) {
				t.Errorf("percentiles %v, want %v", got.pcts, w.pcts)
			}
			for p, d := range w.pcts {
				if got.pcts[p] != d {
					t.Errorf("p%v = %v, want %v", p, got.pcts[p], d)
				}
			}
		})
	}
}

func TestWrkStats(t *testing.T) {
	r, err := parseWrk([]byte(readSample(t, "wrk-errors.txt")))
	if err != nil {
		t.Fatal(err)
	}
	st := r.stats()
	if st.requests != 63376 || st.good != 63376-21124 || st.bad != 21124+32 {
		t.Errorf("requests %d, good %d, bad %d", st.requests, st.good, st.bad)
	}
	if got, want := st.rate(), float64(63376-21124)/(63376/20471.68); got < want*0.9999 || got > want*1.0001 {
		t.Errorf("rate %v, want %v", got, want)
	}
	if st.pct(50) != 126*time.Microsecond || st.pct(99) != 3240*time.Microsecond {
		t.Errorf("p50 %v, p99 %v", st.pct(50), st.pct(99))
	}
	if len(st.errs) != 2 {
		t.Errorf("errs %q, want the non-2xx and the socket errors", st.errs)
	}
}

// TestWrkScript runs wrk with the generated script against a server that
// records the bodies: POST, JSON, the field asked for, and every
// expression distinct and of the generator's form.
func TestWrkScript(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed (apt-get install wrk)")
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	var problems []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var body map[string]string
		err := json.Unmarshal(data, &body)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json":
			problems = append(problems, r.Method+" "+r.Header.Get("Content-Type"))
		case err != nil || len(body) != 1 || !strings.HasSuffix(body["payload"], exprTail):
			problems = append(problems, string(data))
		case seen[body["payload"]]:
			problems = append(problems, "repeated: "+string(data))
		}
		seen[body["payload"]] = true
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	script, err := writeWrkScript(t.TempDir(), "t.lua", "payload", 1000)
	if err != nil {
		t.Fatal(err)
	}
	out, cpu, err := execWrk(context.Background(), bin, wrkArgs(4, time.Second, 5*time.Second, script, srv.URL+"/submit-task"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseWrk(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Fatalf("%d bad requests, first: %q", len(problems), problems[0])
	}
	if r.requests == 0 || int64(len(seen)) < r.requests || r.non2xx != 0 {
		t.Errorf("wrk counted %d requests (%d non-2xx), the server saw %d distinct", r.requests, r.non2xx, len(seen))
	}
	// wrk calls request() once per thread before it connects, without
	// sending that one: each thread's first few numbers suffice.
	even, odd := false, false
	for n := 1000; n < 1010; n++ {
		if seen[strconv.Itoa(n)+exprTail] {
			even, odd = even || n%2 == 0, odd || n%2 == 1
		}
	}
	if !even || !odd || seen["999"+exprTail] {
		t.Errorf("numbering does not start at 1000 on both threads")
	}
	if cpu <= 0 {
		t.Errorf("wrk CPU %v, want > 0", cpu)
	}
}
