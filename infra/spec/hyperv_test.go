package spec

import (
	"strings"
	"testing"
)

func TestHyperVBlock(t *testing.T) {
	base := `name: lab1
provider: hyperv
network: {name: lab1-switch, cidr: 10.9.0.0/24}
nodes:
  - {name: m, role: master, ip: 10.9.0.10}
  - {name: s, role: slave, ip: 10.9.0.11}
`
	tests := []struct {
		name, extra, want string
	}{
		{"defaults", "", ""},
		{"remote", "hyperv: {host: win.example, user: Administrator}\n", ""},
		{"host without user", "hyperv: {host: win.example}\n", "hyperv.user: is needed"},
		{"bad host", "hyperv: {host: 'win box', user: a}\n", "hyperv.host"},
		{"bad dir", "hyperv: {dir: 'relative\\dir'}\n", "hyperv.dir"},
		{"bad port", "hyperv: {host: w, user: a, port: 70000}\n", "hyperv.port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lab, err := Parse([]byte(base+tt.extra), "lab.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if lab.HyperV.Dir != DefaultHyperVDir || lab.HostIP().String() != "10.9.0.1" || lab.HyperVImage() != DefaultHyperVImage {
					t.Fatalf("defaults: %+v, host %s", lab.HyperV, lab.HostIP())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	for _, bad := range []struct{ yaml, want string }{
		{strings.Replace(base, "ip: 10.9.0.10", "ip: 10.9.0.1", 1), "the Windows host's address"},
		{strings.Replace(base, "name: lab1-switch", "name: 'lab[1]'", 1), "network.name"},
		{strings.Replace(base, "ip: 10.9.0.10}", "ip: 10.9.0.10, memory_mb: 1025}", 1), "multiples of 2 MiB"},
		{strings.Replace(strings.Replace(base, "ip: 10.9.0.10}", "ip: 10.9.0.10, image: a.img}", 1), "ip: 10.9.0.11}", "ip: 10.9.0.11, image: b.img}", 1), "one image"},
	} {
		if _, err := Parse([]byte(bad.yaml), "lab.yaml"); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("err = %v, want %q", err, bad.want)
		}
	}
	// The block is not checked for other providers unless a host is named.
	if _, err := Parse([]byte(strings.Replace(base, "provider: hyperv", "provider: local", 1)+"hyperv: {dir: x}\n"), "lab.yaml"); err != nil {
		t.Fatalf("local provider with an unused hyperv block: %v", err)
	}
}
