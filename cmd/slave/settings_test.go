package main

import (
	"reflect"
	"testing"

	"github.com/calclab/calclab/infra/driver/local"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/deploy"
)

const labYAML = `name: t
network: {cidr: 192.168.56.0/24}
services: {master_port: 5000, slave_port: 6001, token: s3cret}
nodes:
  - {name: master, role: master, ip: 192.168.56.10}
  - {name: slave-1, role: slave, ip: 192.168.56.11}
`

// TestLabSettingsAgree: a slave's settings from lab.yaml, rendered as
// flags (the local provider) and as the systemd env file's variables (the
// VM providers), configure the real slave flag set identically.
func TestLabSettingsAgree(t *testing.T) {
	lab, err := spec.Parse([]byte(labYAML), "lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := lab.Slaves()[0]
	vm, err := deploy.VMPlacement(lab, n)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		p    spec.Placement
	}{
		{"local", (&local.Driver{Dir: "/lab"}).Placement(lab, n)},
		{"vm", vm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := lab.Settings(n, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			fromFlags, _, err := parse(s.Flags(), func(string) string { return "" })
			if err != nil {
				t.Fatalf("flags %q: %v", s.Flags(), err)
			}
			env := s.Env()
			fromEnv, _, err := parse(nil, func(k string) string { return env[k] })
			if err != nil {
				t.Fatalf("env %v: %v", env, err)
			}
			if !reflect.DeepEqual(fromFlags, fromEnv) {
				t.Errorf("flags and env file disagree:\nflags %+v\nenv   %+v", fromFlags, fromEnv)
			}
			if fromFlags.Listen != tc.p.Listen || fromFlags.Master != tc.p.MasterURL || fromFlags.ID != "slave-1" || fromFlags.Token != "s3cret" || fromFlags.Advertise != tc.p.Advertise {
				t.Errorf("settings not applied: %+v", fromFlags)
			}
		})
	}
}
