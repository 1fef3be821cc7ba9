package master

import (
	"encoding/json"
	"testing"
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
