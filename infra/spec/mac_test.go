package spec

import "testing"

// The expected bytes after the prefix are the first three of
// sha256("<lab>\x00<node>\x00<nic>\x00<salt>"), computed with sha256sum.
func TestNICMAC(t *testing.T) {
	tests := []struct {
		name           string
		oui            [3]byte
		lab, node, nic string
		salt           int
		want           string
	}{
		{"hyper-v master", HyperVOUI, "calclab", "master", "lan", 0, "00:15:5d:e4:6f:41"},
		{"hyper-v slave-1", HyperVOUI, "calclab", "slave-1", "lan", 0, "00:15:5d:f7:8c:11"},
		{"qemu master", QEMUOUI, "calclab", "master", "lan", 0, "52:54:00:e4:6f:41"},
		{"qemu nat nic, salt 1", QEMUOUI, "calclab", "master", "nat", 1, "52:54:00:4b:76:a8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NICMAC(tc.oui, tc.lab, tc.node, tc.nic, tc.salt); got != tc.want {
				t.Errorf("NICMAC(%x, %q, %q, %q, %d) = %s, want %s", tc.oui, tc.lab, tc.node, tc.nic, tc.salt, got, tc.want)
			}
		})
	}
	if got := HyperVMAC("calclab", "master"); got != "00:15:5d:e4:6f:41" {
		t.Errorf("HyperVMAC(calclab, master) = %s", got)
	}
}
