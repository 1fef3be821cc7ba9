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
services: {master_port: 5000, slave_port: 6001, policy: p2c, token: s3cret}
nodes:
  - {name: master, role: master, ip: 192.168.56.10}
  - {name: slave-1, role: slave, ip: 192.168.56.11}
`

// TestLabSettingsAgree: the master's settings from lab.yaml, rendered as
// flags (the local provider) and as the systemd env file's variables (the
// VM providers), configure the real master flag set identically, and
// every setting names a flag the master has.
func TestLabSettingsAgree(t *testing.T) {
	lab, err := spec.Parse([]byte(labYAML), "lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := lab.Master()
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
			if fromFlags.Listen != tc.p.Listen || fromFlags.Policy != "p2c" || fromFlags.Token != "s3cret" || fromFlags.DataDir != tc.p.DataDir {
				t.Errorf("settings not applied: %+v", fromFlags)
			}
			// One variable per setting: no two settings share a name.
			if len(env) != len(s) {
				t.Errorf("env has %d variables for %d settings", len(env), len(s))
			}
		})
	}
}

// TestRefusesNonsenseSettings: a setting the master cannot run with is
// refused at start, as a flag or as its environment twin, with one line
// naming the flag and exit status 2, instead of a master that starts and
// misbehaves (a negative queue, a zero flush interval, a ticker panic).
func TestRefusesNonsenseSettings(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // the whole error
	}{
		{"negative queue", []string{"--max-queue", "-5"}, nil, "--max-queue must be at least 1, got -5"},
		{"negative queue from the environment", nil, map[string]string{"CALCLAB_MAX_QUEUE": "-5"}, "--max-queue must be at least 1, got -5"},
		{"zero flush interval", []string{"--flush-every", "0"}, nil, "--flush-every must be a positive duration such as 500ms or 2s, got 0s"},
		{"negative task timeout", []string{"--task-timeout", "-1s"}, nil, "--task-timeout must be a positive duration such as 500ms or 2s, got -1s"},
		{"zero task deadline", []string{"--task-deadline", "0"}, nil, "--task-deadline must be a positive duration such as 500ms or 2s, got 0s"},
		{"zero health interval", []string{"--health-interval", "0s"}, nil, "--health-interval must be a positive duration such as 500ms or 2s, got 0s"},
		{"zero heartbeat interval", []string{"--heartbeat-interval", "0s"}, nil, "--heartbeat-interval must be a positive duration such as 500ms or 2s, got 0s"},
		{"zero tile timeout", []string{"--tile-timeout", "0s"}, nil, "--tile-timeout must be a positive duration such as 500ms or 2s, got 0s"},
		{"zero fail threshold", []string{"--fail-threshold", "0"}, nil, "--fail-threshold must be at least 1, got 0"},
		{"zero max batch", []string{"--max-batch", "0"}, nil, "--max-batch must be at least 1, got 0"},
		{"zero max tasks", []string{"--max-tasks", "0"}, nil, "--max-tasks must be at least 1, got 0"},
		{"zero max operands", []string{"--max-operands", "0"}, nil, "--max-operands must be at least 1, got 0"},
		{"negative store size", []string{"--max-store-bytes", "-1"}, nil, "--max-store-bytes must be at least 1, got -1"},
		{"zero mandel pixels", []string{"--mandel-max-pixels", "0"}, nil, "--mandel-max-pixels must be at least 1, got 0"},
		{"zero mandel iterations", []string{"--mandel-max-iter", "0"}, nil, "--mandel-max-iter must be at least 1, got 0"},
		{"unknown policy", []string{"--policy", "fastest"}, nil, `--policy "fastest" is not a balancing policy; use one of least-conn, round-robin, p2c, consistent-hash`},
		{"listen without port", []string{"--listen", "localhost"}, nil, `--listen "localhost" is not host:port, e.g. 127.0.0.1:5000 or :5000`},
		{"listen port out of range", []string{"--listen", ":70000"}, nil, `--listen ":70000": port "70000" is not a TCP port; use 0 to 65535`},
		{"empty data dir", []string{"--data-dir", ""}, nil, "--data-dir is empty: give the directory of the task store"},
		{"token with a space", []string{"--token", "my token"}, nil, `--token has the character ' '; use letters, digits, - . _ ~ + / (and = at the end)`},
		{"bad network", []string{"--allow-cidr", "10.0.0.0/33"}, nil, `--allow-cidr: "10.0.0.0/33" is not a network such as 192.168.56.0/24 or ::1/128`},
		{"no network", []string{"--allow-cidr", " , "}, nil, "--allow-cidr lists no network: no slave could register; give the networks slaves are in, e.g. 127.0.0.0/8"},
		{"not a number", []string{"--max-queue", "many"}, nil, `invalid value "many" for flag -max-queue: parse error (see --help)`},
		{"unknown flag", []string{"--max-qeue", "5"}, nil, "flag provided but not defined: -max-qeue (see --help)"},
		{"an argument", []string{"serve"}, nil, `unexpected arguments ["serve"] (see --help)`},
		{"log level", []string{"--log-level", "loud"}, nil, `log level "loud": use debug, info, warn or error`},
		{"log format", []string{"--log-format", "xml"}, nil, `log format "xml": use text or json`},
		{"profiler address", []string{"--pprof-listen", "6060"}, nil, `--pprof-listen "6060" is not host:port, e.g. 127.0.0.1:5000 or :5000`},
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
	if _, _, err := parse([]string{"--policy", "P2C", "--token", "abc_DEF-1.2~+/=="}, func(string) string { return "" }); err != nil {
		t.Errorf("good settings refused: %v", err)
	}
}
