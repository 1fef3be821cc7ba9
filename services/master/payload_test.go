package master

import (
	"encoding/json"
	"testing"

	"github.com/calclab/calclab/services/api"
)

// FuzzPlainJSONString: the decoder-free path for plain string payloads
// agrees with encoding/json whenever it takes a payload.
func FuzzPlainJSONString(f *testing.F) {
	for _, s := range []string{`"1 + 2"`, `"4 * (2 + 3)"`, `""`, `"a\"b"`, `"\u0031"`, `"é"`, `"1`, `1"`, `"x" `, "\"\x01\"", `"\\"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainJSONString(raw)
		if !ok {
			return
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil || got != want {
			t.Fatalf("%q: fast path %q, encoding/json %q (%v)", raw, got, want, err)
		}
	})
}

// FuzzPlainSubmitRequest: the decoder-free path for plain submissions
// agrees with encoding/json whenever it takes one, and takes the common
// ones.
func FuzzPlainSubmitRequest(f *testing.F) {
	common := []string{`{"payload": "6*7"}`, ` {"task_id":"t-1","payload":"1 + 2"} `, "{\n  \"payload\": \"2**10\",\n  \"task_id\": \"x\"\n}"}
	for _, s := range common {
		if _, ok := plainSubmitRequest([]byte(s)); !ok {
			f.Fatalf("%s: not taken by the fast path", s)
		}
		f.Add([]byte(s))
	}
	for _, s := range []string{`{}`, `{"payload": 1}`, `{"payload": "1", "payload": "2"}`, `{"payload": "1",}`, `{"payload": "1"} x`,
		`{"Payload": "1"}`, `{"payload": "a\"b"}`, `{"payload": {"operation": "addition"}}`, `{"task_id": "a"}`, `{"payload": "1", "x": "y"}`, `{"payload":"1"}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, ok := plainSubmitRequest(raw)
		if !ok {
			return
		}
		var want api.SubmitRequest
		if err := json.Unmarshal(raw, &want); err != nil || got.TaskID != want.TaskID || string(got.Payload) != string(want.Payload) {
			t.Fatalf("%q: fast path %q %q, encoding/json %q %q (%v)", raw, got.TaskID, got.Payload, want.TaskID, want.Payload, err)
		}
	})
}
