package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// batchBody is a /submit-batch reply for the expressions numbered from seq:
// items[k] replaces the k-th item's JSON when set.
func batchBody(seq int64, size, count, failed int, items map[int]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{"batch_id":"batch-1f","count":%d,"failed":%d,"results":[`, count, failed)
	for k := range size {
		if k > 0 {
			b.WriteByte(',')
		}
		if it, ok := items[k]; ok {
			b.WriteString(it)
			continue
		}
		b.WriteString(`{"result":` + strconv.FormatFloat(expected(seq+int64(k)), 'g', -1, 64) + `}`)
	}
	b.WriteString(`],"duration_ms":2.067}` + "\n")
	return b.String()
}

// TestCheckBatchFastAgreesWithEncodingJSON: on every reply the fast check
// reads, it finds what encoding/json finds (good, bad, the first error);
// a reply of any other shape it leaves to encoding/json.
func TestCheckBatchFastAgreesWithEncodingJSON(t *testing.T) {
	const seq = 40
	for _, tc := range []struct {
		name   string
		size   int
		body   string
		fastOK bool // the fast check reads it
		bad    int64
	}{
		{name: "all right", size: 5, body: batchBody(seq, 5, 5, 0, nil), fastOK: true},
		{name: "one wrong value", size: 5, body: batchBody(seq, 5, 5, 0, map[int]string{2: `{"result":1}`}), fastOK: true, bad: 1},
		{name: "errors with escapes", size: 4, body: batchBody(seq, 4, 4, 2, map[int]string{0: `{"error":"bad \"x\" \\ \u00e9"}`, 3: `{"error":"division by zero"}`}), fastOK: true, bad: 2},
		{name: "failed count wrong", size: 3, body: batchBody(seq, 3, 3, 1, nil), fastOK: true},
		{name: "too few results", size: 5, body: batchBody(seq, 4, 5, 0, nil), fastOK: true, bad: 5},
		{name: "count says fewer", size: 5, body: batchBody(seq, 5, 4, 0, nil), fastOK: true, bad: 5},
		{name: "exponent and negative", size: 2, body: `{"batch_id":"b","count":2,"failed":1,"results":[{"result":1.965e2},{"result":2.015E+2}],"duration_ms":0}`, fastOK: true},
		{name: "keys in another order", size: 1, body: `{"count":1,"batch_id":"b","failed":0,"results":[{"result":196.5}],"duration_ms":1}`},
		{name: "spaces", size: 1, body: `{"batch_id":"b", "count":1,"failed":0,"results":[{"result":196.5}],"duration_ms":1}`},
		{name: "leading zero", size: 1, body: `{"batch_id":"b","count":1,"failed":0,"results":[{"result":0196.5}],"duration_ms":1}`},
		{name: "empty error", size: 1, body: `{"batch_id":"b","count":1,"failed":0,"results":[{"error":""}],"duration_ms":1}`},
		{name: "result and error", size: 1, body: `{"batch_id":"b","count":1,"failed":1,"results":[{"result":196.5,"error":"x"}],"duration_ms":1}`},
		{name: "trailing bytes", size: 1, body: `{"batch_id":"b","count":1,"failed":0,"results":[{"result":196.5}],"duration_ms":1}x`},
		{name: "cut short", size: 1, body: `{"batch_id":"b","count":1,"failed":0,"results":[{"result":196.5}`},
		{name: "not JSON", size: 1, body: `<html>502</html>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			good, bad, first, ok := checkBatchFast([]byte(tc.body), seq, size)
			if ok != tc.fastOK {
				t.Fatalf("fast check read it: %v, want %v", ok, tc.fastOK)
			}
			w := &worker{}
			jgood, jbad, jfirst := w.checkBatchJSON([]byte(tc.body), seq, size)
			if !ok {
				return // encoding/json decides
			}
			if good != jgood || bad != jbad || fmt.Sprint(first) != fmt.Sprint(jfirst) {
				t.Errorf("fast: %d good, %d bad, %v; encoding/json: %d good, %d bad, %v", good, bad, first, jgood, jbad, jfirst)
			}
			if bad != tc.bad {
				t.Errorf("%d bad, want %d", bad, tc.bad)
			}
		})
	}
}

func BenchmarkCheckBatch(b *testing.B) {
	body := []byte(batchBody(0, 10000, 10000, 0, nil))
	for _, bc := range []struct {
		name  string
		check func(w *worker) int64
	}{
		{"fast", func(*worker) int64 { g, _, _, _ := checkBatchFast(body, 0, 10000); return g }},
		{"encoding-json", func(w *worker) int64 { g, _, _ := w.checkBatchJSON(body, 0, 10000); return g }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := &worker{}
			for b.Loop() {
				if bc.check(w) != 10000 {
					b.Fatal("not all good")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/expr")
		})
	}
}
