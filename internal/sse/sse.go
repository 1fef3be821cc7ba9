// Package sse reads Server-Sent Events (a text/event-stream body), such as
// the master's GET /mandelbrot/stream writes: "event:" and "data:" lines,
// each event ended by an empty line.
package sse

import (
	"bufio"
	"bytes"
	"io"
)

// Event is one Server-Sent Event.
type Event struct {
	Name string // the "event:" field; empty when the event has none
	Data []byte // the "data:" fields, joined by newlines
}

// Reader reads the events of a stream one by one.
type Reader struct {
	rd   *bufio.Reader
	data []byte
}

// NewReader returns a Reader of the stream r.
func NewReader(r io.Reader) *Reader {
	return &Reader{rd: bufio.NewReaderSize(r, 1<<20)}
}

// Next returns the next event that has data; the Data is only valid until
// the following call. Comments, "id:" and "retry:" lines are skipped. It
// returns io.EOF at the end of the stream, with any event not yet ended by
// an empty line dropped, and the body's error when reading fails.
func (r *Reader) Next() (Event, error) {
	var name string
	hasData := false
	r.data = r.data[:0]
	for {
		line, err := r.rd.ReadBytes('\n')
		if err != nil {
			return Event{}, err
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0: // end of an event
			if hasData {
				return Event{Name: name, Data: r.data}, nil
			}
			name = ""
		case bytes.HasPrefix(line, []byte("event:")):
			name = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
			hasData = true
		}
	}
}
