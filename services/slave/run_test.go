package slave

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TestStartErrorsAreNotPrefixedTwice: cmd/slave prefixes every error with
// "slave: "; Run's own errors do not repeat it and say which flag to
// change.
func TestStartErrorsAreNotPrefixedTwice(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	tests := []struct {
		name   string
		listen string
		want   []string
	}{
		{"port taken", taken.Addr().String(), []string{"address already in use", "--listen"}},
		{"every address without --advertise", "0.0.0.0:0", []string{"set --advertise"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Defaults()
			cfg.Listen, cfg.Master, cfg.Logger = tc.listen, "", slog.New(slog.NewTextHandler(io.Discard, nil))
			err := Run(context.Background(), cfg)
			if err == nil {
				t.Fatal("started")
			}
			if strings.HasPrefix(err.Error(), "slave:") {
				t.Errorf("error %q carries the prefix the command adds again", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
