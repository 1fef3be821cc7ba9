package api

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"time"
)

// The master writes a task as JSON for every reply and every store write,
// and a batch reply holds up to 100,000 results: Task and BatchResponse
// encode themselves without reflection, byte for byte as encoding/json
// would encode their fields (tests compare the two).

// taskFields has Task's fields and tags without its methods: what
// encoding/json makes of a Task when the fast path does not apply.
type taskFields Task

// MarshalJSON encodes t as encoding/json encodes its fields.
func (t Task) MarshalJSON() ([]byte, error) {
	return t.AppendJSON(make([]byte, 0, 256))
}

var errNotFinite = errors.New("json: unsupported value: a task's number is not finite")

// AppendJSON appends t's JSON to b. Non-finite numbers are an error, as
// with encoding/json.
func (t Task) AppendJSON(b []byte) ([]byte, error) {
	if (t.Result != nil && !finite(*t.Result)) || !finite(t.DurationMS) {
		return b, errNotFinite
	}
	b = append(b, `{"task_id":`...)
	b = appendString(b, t.ID)
	b = append(b, `,"expression":`...)
	b = appendString(b, t.Expression)
	b = append(b, `,"status":`...)
	b = appendString(b, t.Status)
	if t.Result != nil {
		b = append(b, `,"result":`...)
		b = appendFloat(b, *t.Result)
	}
	if t.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, t.Error)
	}
	if t.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendString(b, t.Reason)
	}
	if t.Slave != "" {
		b = append(b, `,"slave":`...)
		b = appendString(b, t.Slave)
	}
	b = append(b, `,"attempts":`...)
	b = strconv.AppendInt(b, int64(t.Attempts), 10)
	b = append(b, `,"created_at":`...)
	var err error
	if b, err = appendTime(b, t.CreatedAt); err != nil {
		return b, err
	}
	if t.FinishedAt != nil {
		b = append(b, `,"finished_at":`...)
		if b, err = appendTime(b, *t.FinishedAt); err != nil {
			return b, err
		}
	}
	if t.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		b = appendFloat(b, t.DurationMS)
	}
	return append(b, '}'), nil
}

// batchFields has BatchResponse's fields without its methods.
type batchFields BatchResponse

// MarshalJSON encodes r as encoding/json encodes its fields.
func (r BatchResponse) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(make([]byte, 0, 64+24*len(r.Results)))
}

// AppendJSON appends r's JSON to b. Non-finite numbers are an error.
func (r BatchResponse) AppendJSON(b []byte) ([]byte, error) {
	if !finite(r.DurationMS) {
		return b, errNotFinite
	}
	b = append(b, `{"batch_id":`...)
	b = appendString(b, r.BatchID)
	b = append(b, `,"count":`...)
	b = strconv.AppendInt(b, int64(r.Count), 10)
	b = append(b, `,"failed":`...)
	b = strconv.AppendInt(b, int64(r.Failed), 10)
	b = append(b, `,"results":`...)
	if r.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, it := range r.Results {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			if it.Result != nil {
				if !finite(*it.Result) {
					return b, errNotFinite
				}
				b = append(b, `"result":`...)
				b = appendFloat(b, *it.Result)
			}
			if it.Error != "" {
				if it.Result != nil {
					b = append(b, ',')
				}
				b = append(b, `"error":`...)
				b = appendString(b, it.Error)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"duration_ms":`...)
	b = appendFloat(b, r.DurationMS)
	return append(b, '}'), nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// AppendJSONString appends s as encoding/json encodes a string.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString appends s as a JSON string. Plain printable ASCII is copied;
// anything else is encoded by encoding/json (HTML-safe escapes, invalid
// UTF-8 replaced), so the bytes are the same.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as encoding/json does: %f form between 1e-6 and
// 1e21, exponent form outside, shortest representation.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted), with its error for years it cannot write.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		q, err := t.MarshalJSON()
		return append(b, q...), err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
