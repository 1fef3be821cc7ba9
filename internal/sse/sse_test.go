package sse

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReaderEvents(t *testing.T) {
	stream := ": a comment\n\n" +
		"event: start\ndata: {\"tiles\":2}\n\n" +
		"event:tile\r\ndata:{\"n\":1}\r\n\r\n" +
		"event: empty\n\n" + // no data: not an event
		"id: 7\ndata: line 1\ndata: line 2\n\n" +
		"event: done\ndata: {}\n" // not ended by an empty line
	rd := NewReader(strings.NewReader(stream))
	want := []Event{
		{"start", []byte(`{"tiles":2}`)},
		{"tile", []byte(`{"n":1}`)},
		{"", []byte("line 1\nline 2")},
	}
	for i, w := range want {
		ev, err := rd.Next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.Name != w.Name || string(ev.Data) != string(w.Data) {
			t.Fatalf("event %d = %q %q, want %q %q", i, ev.Name, ev.Data, w.Name, w.Data)
		}
	}
	if ev, err := rd.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last event: %+v, %v; want io.EOF", ev, err)
	}
}
