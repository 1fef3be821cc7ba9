package master

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

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
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), r.Body, limit))
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
		req.Expressions = req.Expressions[:0]
		for dec.More() {
			if len(req.Expressions) >= maxItems {
				e := httpserve.Errorf(http.StatusRequestEntityTooLarge, "batch holds more than %d expressions, the limit", maxItems)
				e.Body.Field = "expressions"
				return req, e
			}
			var expr string
			if err := dec.Decode(&expr); err != nil {
				return fail(err)
			}
			req.Expressions = append(req.Expressions, expr)
		}
		if _, err := dec.Token(); err != nil { // ]
			return fail(err)
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
