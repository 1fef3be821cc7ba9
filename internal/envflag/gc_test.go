package envflag

import (
	"runtime/debug"
	"testing"
)

// TestDefaultGCPercentLeavesTheOperatorsChoice: the services' GC target
// applies only when GOGC is not set.
func TestDefaultGCPercentLeavesTheOperatorsChoice(t *testing.T) {
	orig := debug.SetGCPercent(77)
	defer debug.SetGCPercent(orig)
	tests := []struct {
		gogc string
		want int
	}{{"", 400}, {"50", 77}, {"off", 77}}
	for _, tc := range tests {
		t.Setenv("GOGC", tc.gogc)
		debug.SetGCPercent(77)
		DefaultGCPercent(400)
		if got := debug.SetGCPercent(77); got != tc.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tc.gogc, got, tc.want)
		}
	}
}
