package master

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/httpserve"
)

// readBatch decodes a POST /submit-batch body item by item, counting as it
// goes: past maxItems it stops with a 413 at once, without reading or
// holding the rest (a 16 MB body of 4M items is refused after maxItems,
// not decoded whole). Unknown fields are ignored, as elsewhere.
func readBatch(c *echo.Context, limit int64, maxItems int) (api.BatchRequest, error) {
	var req api.BatchRequest
	r := c.Request()
	if r.ContentLength > limit {
		return req, httpserve.Errorf(http.StatusRequestEntityTooLarge, "request body is %d bytes, limit is %d", r.ContentLength, limit)
	}
	// src is what dec reads from: the body, and after the expressions
	// array the reader that holds the rest of it.
	var src io.Reader = http.MaxBytesReader(c.Response(), r.Body, limit)
	dec := json.NewDecoder(src)
	fail := func(err error) (api.BatchRequest, error) {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return req, httpserve.BodyError(err, limit)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return req, httpserve.Errorf(http.StatusBadRequest, "malformed JSON: request body is empty or cut short; expected a JSON object")
		case errors.As(err, &se):
			return req, httpserve.Errorf(http.StatusBadRequest, "malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			e := httpserve.Errorf(http.StatusBadRequest, "field %q must be %s, got JSON %s", "expressions", te.Type.String(), te.Value)
			e.Body.Field = "expressions"
			return req, e
		case errors.As(err, new(*httpserve.Error)):
			return req, err
		default:
			return req, httpserve.BodyError(err, limit)
		}
	}
	expect := func(want json.Delim, what string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if d, ok := tok.(json.Delim); !ok || d != want {
			e := httpserve.Errorf(http.StatusBadRequest, "malformed JSON: expected %s", what)
			if want == '[' {
				e.Body.Field = "expressions"
			}
			return e
		}
		return nil
	}
	if err := expect('{', "an object"); err != nil {
		return fail(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail(err)
		}
		if key, _ := tok.(string); key != "expressions" {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail(err)
			}
			continue
		}
		if err := expect('[', `"expressions" to be an array of strings`); err != nil {
			return fail(err)
		}
		// The array's plain strings are read without the decoder (its
		// per-value cost was most of a batch's decoding); anything else
		// is handed back to a decoder at that element.
		rd := bufio.NewReaderSize(io.MultiReader(dec.Buffered(), src), 64<<10)
		req.Expressions = req.Expressions[:0]
		if req.Expressions, dec, src, err = readExpressions(rd, req.Expressions, maxItems); err != nil {
			return fail(err)
		}
		if dec == nil { // the object ended with the array
			httpserve.BodyRead(c)
			return req, nil
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return fail(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, httpserve.Errorf(http.StatusBadRequest, "malformed JSON: data after the object")
	}
	httpserve.BodyRead(c)
	return req, nil
}

func tooMany(maxItems int) error {
	e := httpserve.Errorf(http.StatusRequestEntityTooLarge, "batch holds more than %d expressions, the limit", maxItems)
	e.Body.Field = "expressions"
	return e
}

func malformed(format string, args ...any) error {
	e := httpserve.Errorf(http.StatusBadRequest, "malformed JSON in \"expressions\": "+format, args...)
	e.Body.Field = "expressions"
	return e
}

// readExpressions reads the elements of the "expressions" array from r,
// whose next byte follows its '[', up to and including the ']' and what
// follows it in the object: a ',' (more fields: it returns a decoder for
// the rest of the object, positioned as after its '{') or the final '}'
// (it returns a nil decoder, having checked that nothing but space
// follows). Plain strings (printable ASCII, no escapes) are read here; at
// the first other element the rest of the array goes to encoding/json.
func readExpressions(r *bufio.Reader, out []string, maxItems int) ([]string, *json.Decoder, io.Reader, error) {
	first := true
	for {
		c, err := nextByte(r)
		if err != nil {
			return out, nil, nil, err
		}
		if c == ']' && first {
			break
		}
		if !first {
			if c == ']' {
				break
			}
			if c != ',' {
				return out, nil, nil, malformed("expected , or ] after an expression, got %q", c)
			}
			if c, err = nextByte(r); err != nil {
				return out, nil, nil, err
			}
			if c == ']' {
				return out, nil, nil, malformed("an expression must follow ,")
			}
		}
		first = false
		if len(out) >= maxItems {
			return out, nil, nil, tooMany(maxItems)
		}
		if c != '"' {
			return decodeRest(io.MultiReader(bytes.NewReader([]byte{'[', c}), r), out, maxItems)
		}
		s, ok, err := readPlainString(r)
		if err != nil {
			return out, nil, nil, err
		}
		if !ok {
			// s holds the string's bytes read so far (an escape or a byte
			// outside printable ASCII is among them).
			return decodeRest(io.MultiReader(strings.NewReader(`["`), strings.NewReader(s), r), out, maxItems)
		}
		out = append(out, s)
	}
	return afterArray(r, out)
}

// readPlainString reads a string's bytes after its opening quote. ok is
// false, with the bytes read so far, when an escape, a control byte or a
// byte outside ASCII comes first (or the string is longer than the
// reader's buffer).
func readPlainString(r *bufio.Reader) (string, bool, error) {
	b, err := r.ReadSlice('"')
	if err == bufio.ErrBufferFull {
		return string(b), false, nil
	}
	if err != nil {
		return "", false, cutShort(err)
	}
	body := b[:len(b)-1]
	if !plainJSON(body) {
		return string(b), false, nil // the quote read is an escaped one, or part of the rest
	}
	return string(body), true, nil
}

// decodeRest decodes the rest of the array with encoding/json from r,
// which starts with a synthetic '[' and the current element, then reads
// what follows the array as readExpressions does.
func decodeRest(r io.Reader, out []string, maxItems int) ([]string, *json.Decoder, io.Reader, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil { // the synthetic [
		return out, nil, nil, err
	}
	for dec.More() {
		if len(out) >= maxItems {
			return out, nil, nil, tooMany(maxItems)
		}
		var expr string
		if err := dec.Decode(&expr); err != nil {
			return out, nil, nil, err
		}
		out = append(out, expr)
	}
	if _, err := dec.Token(); err != nil { // ]
		return out, nil, nil, err
	}
	return afterArray(bufio.NewReader(io.MultiReader(dec.Buffered(), r)), out)
}

// afterArray reads what follows the array in the object: see
// readExpressions.
func afterArray(r *bufio.Reader, out []string) ([]string, *json.Decoder, io.Reader, error) {
	c, err := nextByte(r)
	if err != nil {
		return out, nil, nil, err
	}
	switch c {
	case '}':
		switch c, err := nextByte(r); {
		case err == io.ErrUnexpectedEOF:
			return out, nil, nil, nil // the end of the body
		case err != nil:
			return out, nil, nil, err
		default:
			return out, nil, nil, httpserve.Errorf(http.StatusBadRequest, "malformed JSON: data after the object (%q)", c)
		}
	case ',':
		dec := json.NewDecoder(io.MultiReader(strings.NewReader("{"), r))
		if _, err := dec.Token(); err != nil {
			return out, nil, nil, err
		}
		return out, dec, r, nil
	default:
		return out, nil, nil, httpserve.Errorf(http.StatusBadRequest, "malformed JSON: expected , or } after the \"expressions\" array, got %q", c)
	}
}

// nextByte returns the next byte that is not JSON white space; the end of
// the body is io.ErrUnexpectedEOF (with c 0).
func nextByte(r *bufio.Reader) (byte, error) {
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, cutShort(err)
		}
		if !jsonSpace(c) {
			return c, nil
		}
	}
}

func cutShort(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
