// Package taskstream is the wire format of the master's persistent task
// channel to a slave: one TCP connection per slave, opened as an HTTP/1.1
// upgrade of GET /compute/stream (Upgrade: calclab-stream/1), then carrying
// binary frames both ways. Many tasks are in flight on one connection, the
// answers come back in any order and are matched by id, and each side
// writes every frame it has ready in one syscall.
//
// A request frame is an expression to evaluate, with the request id of
// the task it belongs to (empty when there is none), so the slave's log
// names the same id as the master's:
//
//	uvarint id | uvarint n | n bytes of expression | uvarint m | m bytes of request id
//
// An answer frame is a result or the slave's verdict:
//
//	uvarint id | 0x00 | 8 bytes: the float64 result, little-endian IEEE 754
//	uvarint id | 0x01 | uvarint n | n bytes: the evaluation error
//
// Anything else (an unknown kind, a length over the limit, a result that is
// not finite) is a protocol error: the reader closes the connection. The
// public JSON endpoints (/compute, /compute/batch) are unchanged; the stream
// is only the master's faster path.
package taskstream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Protocol is the Upgrade token of the stream.
const Protocol = "calclab-stream/1"

// Path is the slave's endpoint that upgrades to the stream.
const Path = "/compute/stream"

// MaxError bounds the text of an evaluation error on the wire.
const MaxError = 1024

// MaxRequestID bounds a request id on the wire (the services accept ids of
// at most 64 characters).
const MaxRequestID = 64

// Answer kinds.
const (
	kindResult byte = 0
	kindError  byte = 1
)

// ErrProtocol is wrapped by every malformed-frame error.
var ErrProtocol = errors.New("task stream protocol error")

// AppendRequest appends a request frame to buf; a request id over
// MaxRequestID bytes is cut.
func AppendRequest(buf []byte, id uint64, expr, reqID string) []byte {
	if len(reqID) > MaxRequestID {
		reqID = reqID[:MaxRequestID]
	}
	buf = binary.AppendUvarint(buf, id)
	buf = binary.AppendUvarint(buf, uint64(len(expr)))
	buf = append(buf, expr...)
	buf = binary.AppendUvarint(buf, uint64(len(reqID)))
	return append(buf, reqID...)
}

// AppendResult appends an answer frame carrying a result.
func AppendResult(buf []byte, id uint64, v float64) []byte {
	buf = binary.AppendUvarint(buf, id)
	buf = append(buf, kindResult)
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
}

// AppendError appends an answer frame carrying an evaluation error (cut to
// MaxError bytes).
func AppendError(buf []byte, id uint64, msg string) []byte {
	if msg == "" {
		msg = "evaluation failed"
	}
	if len(msg) > MaxError {
		msg = msg[:MaxError]
	}
	buf = binary.AppendUvarint(buf, id)
	buf = append(buf, kindError)
	buf = binary.AppendUvarint(buf, uint64(len(msg)))
	return append(buf, msg...)
}

// Request is a decoded request frame.
type Request struct {
	ID        uint64
	Expr      string
	RequestID string
}

// ReadRequest reads one request frame; expressions longer than maxLen are a
// protocol error. At the end of the stream it returns io.EOF.
func ReadRequest(r *bufio.Reader, maxLen int) (Request, error) {
	return (&RequestReader{R: r, MaxLen: maxLen}).Read()
}

// RequestReader reads request frames from R, like ReadRequest, and hands
// out one string for a request id repeated from frame to frame (the
// expressions of one task or one batch share it) instead of a copy each.
type RequestReader struct {
	R      *bufio.Reader
	MaxLen int
	lastID string
}

// Read reads the next request frame.
func (rr *RequestReader) Read() (Request, error) {
	r := rr.R
	id, err := binary.ReadUvarint(r)
	if err != nil {
		return Request{}, eof(err)
	}
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return Request{}, truncated(err)
	}
	if n > uint64(rr.MaxLen) {
		return Request{}, fmt.Errorf("%w: expression of %d bytes, limit is %d", ErrProtocol, n, rr.MaxLen)
	}
	req := Request{ID: id}
	if req.Expr, err = readString(r, int(n)); err != nil {
		return Request{}, truncated(err)
	}
	m, err := binary.ReadUvarint(r)
	if err != nil {
		return Request{}, truncated(err)
	}
	if m > MaxRequestID {
		return Request{}, fmt.Errorf("%w: request id of %d bytes, limit is %d", ErrProtocol, m, MaxRequestID)
	}
	if m > 0 {
		b, err := r.Peek(int(m)) // MaxRequestID is far below any buffer size
		if err != nil {
			return Request{}, truncated(err)
		}
		if string(b) != rr.lastID {
			rr.lastID = string(b)
		}
		req.RequestID = rr.lastID
		_, _ = r.Discard(int(m))
	}
	return req, nil
}

// readString reads n bytes as a string: one allocation when they fit the
// buffer.
func readString(r *bufio.Reader, n int) (string, error) {
	if n <= r.Size() {
		b, err := r.Peek(n)
		if err != nil {
			return "", err
		}
		s := string(b)
		_, _ = r.Discard(n)
		return s, nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// Answer is a decoded answer frame: a result, or an evaluation error.
type Answer struct {
	ID     uint64
	Result float64
	Error  string // non-empty: the slave's verdict, Result is unset
}

// ReadAnswer reads one answer frame. At the end of the stream it returns
// io.EOF.
func ReadAnswer(r *bufio.Reader) (Answer, error) {
	id, err := binary.ReadUvarint(r)
	if err != nil {
		return Answer{}, eof(err)
	}
	kind, err := r.ReadByte()
	if err != nil {
		return Answer{}, truncated(err)
	}
	switch kind {
	case kindResult:
		var b [8]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return Answer{}, truncated(err)
		}
		v := math.Float64frombits(binary.LittleEndian.Uint64(b[:]))
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return Answer{}, fmt.Errorf("%w: result %v of task %d is not finite", ErrProtocol, v, id)
		}
		return Answer{ID: id, Result: v}, nil
	case kindError:
		n, err := binary.ReadUvarint(r)
		if err != nil {
			return Answer{}, truncated(err)
		}
		if n == 0 || n > MaxError {
			return Answer{}, fmt.Errorf("%w: error text of %d bytes (1 to %d)", ErrProtocol, n, MaxError)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return Answer{}, truncated(err)
		}
		return Answer{ID: id, Error: string(b)}, nil
	default:
		return Answer{}, fmt.Errorf("%w: unknown answer kind %#x", ErrProtocol, kind)
	}
}

// eof keeps a clean end of stream between frames as io.EOF; a varint cut
// short is a protocol error.
func eof(err error) error {
	if errors.Is(err, io.EOF) {
		return io.EOF
	}
	return truncated(err)
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: frame cut short: %w", ErrProtocol, io.ErrUnexpectedEOF)
	}
	return err // an I/O error, or a varint over 64 bits
}
