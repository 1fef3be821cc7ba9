package master

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
	"github.com/calclab/calclab/services/httpserve"
)

func decodeBatch(body string, maxItems int) (api.BatchRequest, error) {
	req := httptest.NewRequest(http.MethodPost, "/submit-batch", strings.NewReader(body))
	c := echo.New().NewContext(req, httptest.NewRecorder())
	return readBatch(c, 1<<20, maxItems)
}

// TestReadBatchIsEncodingJSON: the batch reader gives the expressions
// encoding/json gives, and refuses with a 400 the bodies it refuses,
// whatever mix of plain strings, escapes, other values and fields.
func TestReadBatchIsEncodingJSON(t *testing.T) {
	bodies := []string{
		`{"expressions": ["1 + 2", "4 * (2 + 3)"]}`,
		`{"expressions":[]}`,
		` { "expressions" : [ "1" , "2" ] } `,
		`{"x": 1, "expressions": ["1"], "y": {"z": [1, "]"]}}`,
		`{"expressions": ["1"], "expressions": ["2", "3"]}`,
		`{"expressions": ["1", "2 \u002b 3", "é", "4"]}`,
		`{"expressions": ["a\"b", "5"]}`,
		`{"expressions": ["1", null, "2"]}`,
		`{"expressions": ["1", 2]}`,
		`{"expressions": [3, "1"]}`,
		`{"expressions": ["1",]}`,
		`{"expressions": ["1" "2"]}`,
		`{"expressions": ["1"]`,
		`{"expressions": ["1`,
		`{"expressions": ["1"]} x`,
		`{"expressions": ["1"]}}`,
		`{"expressions": ["1"] "x": 2}`,
		"{\"expressions\": [\"1\x01\"]}",
		"{\"expressions\": [\"\xff\"]}",
		`{"expressions": "1"}`,
		`{"expressions": ["` + strings.Repeat("9", 70000) + `"]}`,
		`{"expressions": ["1"], "x": }`,
		`[]`,
		``,
	}
	for _, body := range bodies {
		name := body
		if len(name) > 60 {
			name = name[:60]
		}
		t.Run(name, func(t *testing.T) {
			got, err := decodeBatch(body, 1000)
			var want api.BatchRequest
			werr := json.Unmarshal([]byte(body), &want)
			if werr != nil {
				var he *httpserve.Error
				if err == nil || !errors.As(err, &he) || he.Code != http.StatusBadRequest {
					t.Fatalf("encoding/json refuses it (%v); readBatch: %+v, %v, want a 400", werr, got, err)
				}
				return
			}
			if err != nil || !slices.Equal(got.Expressions, want.Expressions) {
				t.Fatalf("got %q, %v; want %q", got.Expressions, err, want.Expressions)
			}
		})
	}
}

func TestReadBatchCountsAsItReads(t *testing.T) {
	for _, body := range []string{
		`{"expressions": ["1", "2", "3"]}`,
		`{"expressions": ["1", "\u0032", "3"]}`,
	} {
		_, err := decodeBatch(body, 2)
		var he *httpserve.Error
		if !errors.As(err, &he) || he.Code != http.StatusRequestEntityTooLarge || !strings.Contains(he.Body.Error, "2") {
			t.Fatalf("%s with a limit of 2: %v, want a 413 naming 2", body, err)
		}
	}
}

func FuzzReadBatch(f *testing.F) {
	f.Add(`{"expressions": ["1 + 2", "x\u0041"], "k": [1]}`)
	f.Add(`{"expressions": [null, "1"]}`)
	f.Fuzz(func(t *testing.T, body string) {
		got, err := decodeBatch(body, 1<<20)
		var want api.BatchRequest
		if werr := json.Unmarshal([]byte(body), &want); werr != nil {
			if err == nil {
				t.Fatalf("%q: encoding/json refuses it (%v), readBatch gives %q", body, werr, got.Expressions)
			}
			return
		}
		if err != nil && !strings.HasPrefix(strings.TrimLeft(body, " \t\r\n"), "{") {
			return // a body that is not an object (null, []) is refused on purpose
		}
		if err != nil || !slices.Equal(got.Expressions, want.Expressions) {
			t.Fatalf("%q: got %q, %v; want %q", body, got.Expressions, err, want.Expressions)
		}
	})
}
