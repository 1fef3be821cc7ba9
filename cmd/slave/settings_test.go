package main

import (
	"reflect"
	"testing"

	"github.com/calclab/calclab/infra/driver/local"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/internal/envflag"
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

// TestRefusesNonsenseSettings: a setting the slave cannot run with is
// refused at start with one line naming the flag and exit status 2:
// --master notaurl used to retry its registration forever.
func TestRefusesNonsenseSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"master not a URL", []string{"--master", "notaurl"}, nil, `--master "notaurl" must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master from the environment", nil, map[string]string{"CALCLAB_MASTER": "notaurl"}, `--master "notaurl" must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master without scheme", []string{"--master", "127.0.0.1:5000"}, nil, `--master "127.0.0.1:5000" is not a URL, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master host:port without scheme", []string{"--master", "localhost:5000"}, nil, `--master "localhost:5000" must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master another scheme", []string{"--master", "ftp://127.0.0.1:5000"}, nil, `--master "ftp://127.0.0.1:5000" must be an absolute http:// or https:// URL, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master without host", []string{"--master", "http:///x"}, nil, `--master "http:///x" has no host, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master with a query", []string{"--master", "http://127.0.0.1:5000/?a=1"}, nil, `--master "http://127.0.0.1:5000/?a=1" must be scheme://host[:port] with no credentials, query or fragment, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"master bad port", []string{"--master", "http://127.0.0.1:99999"}, nil, `--master "http://127.0.0.1:99999" has port "99999", not a TCP port, e.g. http://127.0.0.1:5000 (empty: run stand-alone)`},
		{"advertise not a URL", []string{"--advertise", "slave-1"}, nil, `--advertise "slave-1" must be an absolute http:// or https:// URL, e.g. http://192.168.56.11:6001`},
		{"advertise without port", []string{"--advertise", "http://192.168.56.11"}, nil, `--advertise "http://192.168.56.11" must name its port (the master asks for scheme://host:port), e.g. http://192.168.56.11:6001`},
		{"id the master refuses", []string{"--id", "slave 1"}, nil, `--id "slave 1" must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit`},
		{"token with a space", []string{"--token", "a b"}, nil, `--token has the character ' '; use letters, digits, - . _ ~ + / (and = at the end)`},
		{"zero capacity", []string{"--capacity", "0"}, nil, "--capacity must be from 1 to 4096, got 0"},
		{"listen without port", []string{"--listen", "127.0.0.1"}, nil, `--listen "127.0.0.1" is not host:port, e.g. 127.0.0.1:5000 or :5000`},
		{"not a number", []string{"--capacity", "lots"}, nil, `invalid value "lots" for flag -capacity: parse error (see --help)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parse(tc.args, func(k string) string { return tc.env[k] })
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Error() != tc.want {
				t.Errorf("error\n %s\nwant\n %s", err, tc.want)
			}
			if code := envflag.ExitCode(err); code != 2 {
				t.Errorf("exit status %d, want 2", code)
			}
		})
	}
	for _, args := range [][]string{
		{"--master", ""},
		{"--master", "https://master.example:5000/"},
		{"--master", "http://[::1]:5000", "--advertise", "http://[::1]:6001", "--id", "slave-1", "--token", "t0k=="},
	} {
		if _, _, err := parse(args, func(string) string { return "" }); err != nil {
			t.Errorf("%q refused: %v", args, err)
		}
	}
}
