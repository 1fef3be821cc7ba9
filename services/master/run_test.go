package master_test

import (
	"context"
	"strings"
	"testing"

	"github.com/calclab/calclab/services/master"
)

// TestStartErrorsAreNotPrefixedTwice: cmd/master prefixes every error with
// "master: "; Run's own errors do not repeat it ("master: master: listen:
// ...") and say which flag to change.
func TestStartErrorsAreNotPrefixedTwice(t *testing.T) {
	taken := listen(t)
	defer taken.Close()
	tests := []struct {
		name   string
		mutate func(*master.Config)
		want   []string
	}{
		{"port taken", func(c *master.Config) { c.Listen = taken.Addr().String() }, []string{"address already in use", "--listen"}},
		{"unknown policy", func(c *master.Config) { c.Policy = "fastest" }, []string{`--policy "fastest" is not a balancing policy; use one of least-conn`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := master.Defaults()
			cfg.DataDir, cfg.Logger = t.TempDir(), quiet
			tc.mutate(&cfg)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			err := master.Run(ctx, cfg)
			if err == nil {
				t.Fatal("started")
			}
			if strings.HasPrefix(err.Error(), "master:") || strings.Contains(err.Error(), "balancer:") {
				t.Errorf("error %q carries a prefix the command adds again", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
