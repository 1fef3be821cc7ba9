package taskstream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
)

func TestRequestRoundTrip(t *testing.T) {
	var buf []byte
	exprs := []string{"1 + 2", "", strings.Repeat("9", 4096), "2 ** 0.5 * (3 - 1)"}
	ids := []string{"", "3f2a9c", strings.Repeat("r", 64), strings.Repeat("x", 100)}
	for i, e := range exprs {
		buf = AppendRequest(buf, uint64(i)*1_000_003, e, ids[i])
	}
	r := bufio.NewReader(bytes.NewReader(buf))
	for i, e := range exprs {
		want := Request{ID: uint64(i) * 1_000_003, Expr: e, RequestID: ids[i]}
		if len(want.RequestID) > MaxRequestID {
			want.RequestID = want.RequestID[:MaxRequestID]
		}
		got, err := ReadRequest(r, 4096)
		if err != nil || got != want {
			t.Fatalf("frame %d: got %+v, %v; want %+v", i, got, err, want)
		}
	}
	if _, err := ReadRequest(r, 4096); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestAnswerRoundTrip(t *testing.T) {
	var buf []byte
	buf = AppendResult(buf, 1, 42)
	buf = AppendError(buf, 2, "division by zero")
	buf = AppendResult(buf, math.MaxUint64, -0.1)
	buf = AppendError(buf, 3, strings.Repeat("x", 5000))
	buf = AppendError(buf, 4, "")
	want := []Answer{{ID: 1, Result: 42}, {ID: 2, Error: "division by zero"}, {ID: math.MaxUint64, Result: -0.1},
		{ID: 3, Error: strings.Repeat("x", MaxError)}, {ID: 4, Error: "evaluation failed"}}
	r := bufio.NewReader(bytes.NewReader(buf))
	for i, w := range want {
		got, err := ReadAnswer(r)
		if err != nil || got != w {
			t.Fatalf("answer %d: got %+v, %v; want %+v", i, got, err, w)
		}
	}
	if _, err := ReadAnswer(r); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestMalformedFramesAreProtocolErrors(t *testing.T) {
	nan := AppendResult(nil, 7, 0)
	copy(nan[len(nan)-8:], []byte{1, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	tests := []struct {
		name   string
		frame  []byte
		answer bool
	}{
		{"request cut in its expression", AppendRequest(nil, 1, "1 + 2", "")[:4], false},
		{"request cut after its id", []byte{5}, false},
		{"request cut before its request id", AppendRequest(nil, 1, "1", "")[:3], false},
		{"request cut in its request id", AppendRequest(nil, 1, "1", "abcd")[:6], false},
		{"request over the length limit", AppendRequest(nil, 1, strings.Repeat("1", 17), ""), false},
		{"request id over its limit", append(AppendRequest(nil, 1, "1", "")[:3], 65), false},
		{"answer of unknown kind", []byte{1, 9, 0}, true},
		{"answer cut in its result", AppendResult(nil, 1, 3)[:5], true},
		{"answer with an empty error", []byte{1, 1, 0}, true},
		{"answer with an error over MaxError", append([]byte{1, 1}, 0x81, 0x10), true},
		{"answer with a NaN result", nan, true},
		{"answer cut in its error", AppendError(nil, 1, "boom")[:4], true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := bufio.NewReader(bytes.NewReader(tc.frame))
			var err error
			if tc.answer {
				_, err = ReadAnswer(r)
			} else {
				_, err = ReadRequest(r, 16)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("got %v, want a protocol error", err)
			}
		})
	}
}

// FuzzReadAnswer: any bytes decode to answers that survive an encode and a
// decode unchanged, or stop with an error; never a panic or a huge
// allocation.
func FuzzReadAnswer(f *testing.F) {
	f.Add(AppendError(AppendResult(nil, 1, 2), 3, "bad"))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for {
			a, err := ReadAnswer(r)
			if err != nil {
				return
			}
			var again []byte
			if a.Error != "" {
				again = AppendError(again, a.ID, a.Error)
			} else {
				again = AppendResult(again, a.ID, a.Result)
			}
			b, err := ReadAnswer(bufio.NewReader(bytes.NewReader(again)))
			if err != nil || b != a {
				t.Fatalf("answer %+v encoded and decoded again: %+v, %v", a, b, err)
			}
		}
	})
}

// TestRequestReaderSharesRepeatedRequestIDs: the frames of one batch carry
// one request id; the reader gives each the same value with one allocation
// per frame (its expression), and a new id is read as such.
func TestRequestReaderSharesRepeatedRequestIDs(t *testing.T) {
	var buf []byte
	ids := []string{"batch-1", "batch-1", "batch-1", "", "task-2", "batch-1"}
	for i, id := range ids {
		buf = AppendRequest(buf, uint64(i), "1 + 2", id)
	}
	rr := &RequestReader{R: bufio.NewReader(bytes.NewReader(buf)), MaxLen: 16}
	for i, want := range ids {
		req, err := rr.Read()
		if err != nil || req.ID != uint64(i) || req.Expr != "1 + 2" || req.RequestID != want {
			t.Fatalf("frame %d: %+v, %v; want request id %q", i, req, err, want)
		}
	}
	one := AppendRequest(nil, 7, "12345 * (2 + 3) - 7 / 2", "0123456789abcdef")
	src := bytes.NewReader(nil)
	rr = &RequestReader{R: bufio.NewReader(src), MaxLen: 64}
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(one)
		rr.R.Reset(src)
		if _, err := rr.Read(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("%.1f allocations per frame with a repeated request id, want 1 (the expression)", allocs)
	}
}
