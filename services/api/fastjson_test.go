package api

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

// TestTaskJSONIsEncodingJSONs: the hand-written encoding gives the same
// bytes as encoding/json's reflection on Task's fields.
func TestTaskJSONIsEncodingJSONs(t *testing.T) {
	created := time.Date(2026, 12, 6, 16, 3, 0, 123456789, time.UTC)
	finished := created.Add(1500 * time.Microsecond)
	tests := []struct {
		name string
		task Task
	}{
		{"queued", Task{ID: "task-1", Expression: "1 + 2", Status: StatusQueued, CreatedAt: created}},
		{"completed", Task{ID: "t", Expression: "4 * (2 + 3)", Status: StatusCompleted, Result: ptr(20.0), Slave: "slave-1", Attempts: 1, CreatedAt: created, FinishedAt: &finished, DurationMS: 1.5}},
		{"failed", Task{ID: "t", Expression: "1 / 0", Status: StatusFailed, Error: `evaluation failed: division by zero at position 2 "<&>"`, Reason: ReasonEvaluation, Attempts: 2, CreatedAt: created}},
		{"tiny, huge and negative zero results", Task{ID: "t", Result: ptr(1e-7), DurationMS: 1e21}},
		{"negative exponent form", Task{ID: "t", Result: ptr(-2.5e-300), DurationMS: 123456789.125}},
		{"negative zero", Task{ID: "t", Result: ptr(math.Copysign(0, -1))}},
		{"control, non-ASCII and invalid UTF-8", Task{ID: "t", Expression: "1\n+\t2 \u2028 é \xff\x00", Error: "\\"}},
		{"zero time", Task{}},
		{"time with an offset", Task{CreatedAt: created.In(time.FixedZone("x", 5*3600+30*60))}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := json.Marshal(taskFields(tc.task))
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.task.AppendJSON(nil)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got  %s (%v)\nwant %s", got, err, want)
			}
			// And through encoding/json, as the store and Echo call it.
			if got, err = json.Marshal(tc.task); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("got  %s (%v)\nwant %s", got, err, want)
			}
		})
	}
}

func TestTaskJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, tc := range []Task{
		{Result: ptr(math.NaN())},
		{DurationMS: math.Inf(1)},
		{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := json.Marshal(taskFields(tc)); err == nil {
			t.Fatalf("encoding/json accepts %+v", tc)
		}
		if b, err := json.Marshal(tc); err == nil {
			t.Fatalf("%+v encoded as %s, want an error", tc, b)
		}
	}
}

func FuzzTaskJSON(f *testing.F) {
	f.Add("task-1", "1 + 2", "x", math.Float64bits(20), int64(1733500000123456789), 3)
	f.Add("<", "\xff\u2028", "\"\\", math.Float64bits(1e-7), int64(-1), -1)
	f.Fuzz(func(t *testing.T, id, expr, msg string, bits uint64, nanos int64, attempts int) {
		r := math.Float64frombits(bits)
		created := time.Unix(0, nanos).UTC()
		task := Task{ID: id, Expression: expr, Status: StatusFailed, Error: msg, Reason: msg, Slave: id, Result: &r,
			Attempts: attempts, CreatedAt: created, FinishedAt: &created, DurationMS: r}
		want, werr := json.Marshal(taskFields(task))
		got, gerr := task.AppendJSON(nil)
		if (werr == nil) != (gerr == nil) || (werr == nil && !bytes.Equal(got, want)) {
			t.Fatalf("got %s (%v), want %s (%v)", got, gerr, want, werr)
		}
	})
}

// TestBatchJSONIsEncodingJSONs: as TestTaskJSONIsEncodingJSONs, for batch
// replies.
func TestBatchJSONIsEncodingJSONs(t *testing.T) {
	for _, r := range []BatchResponse{
		{BatchID: "batch-1", Count: 3, Failed: 1, DurationMS: 12.5, Results: []BatchItem{{Result: ptr(20.0)}, {Error: "invalid expression: <x> & y"}, {Result: ptr(1e-9)}}},
		{BatchID: "b", Results: []BatchItem{}},
		{},
		{Results: []BatchItem{{}, {Result: ptr(-0.5), Error: "both"}}},
	} {
		want, err := json.Marshal(batchFields(r))
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.AppendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("got  %s (%v)\nwant %s", got, err, want)
		}
	}
	if _, err := json.Marshal(BatchResponse{Results: []BatchItem{{Result: ptr(math.Inf(-1))}}}); err == nil {
		t.Fatal("a non-finite result encoded")
	}
}
