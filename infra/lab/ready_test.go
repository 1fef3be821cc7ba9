package lab_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/calclab/calclab/infra/driver"
	"github.com/calclab/calclab/infra/lab"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/sshkeys"
)

// stubVM is a Remote driver whose one VM is either running without an SSH
// server yet or already stopped; it only feeds WaitBooted.
type stubVM struct {
	driver.Unsupported
	running bool
	console string
	addr    string
	dir     string
}

func (s *stubVM) Info() driver.Info                                              { return driver.Info{Name: "stub", Remote: true} }
func (s *stubVM) Up(context.Context, *spec.Lab, driver.Progress) error           { return nil }
func (s *stubVM) Down(context.Context, *spec.Lab) error                          { return nil }
func (s *stubVM) StopNode(context.Context, *spec.Lab, string) error              { return nil }
func (s *stubVM) DeleteNode(context.Context, *spec.Lab, string) error            { return nil }
func (s *stubVM) Logs(context.Context, *spec.Lab, string, bool, io.Writer) error { return nil }
func (s *stubVM) Nodes(_ context.Context, l *spec.Lab) ([]driver.Node, error) {
	return []driver.Node{{Name: "master", Role: "master", Running: s.running, Console: s.console,
		Started: time.Now(), BootTimeout: 3 * time.Second}}, nil
}
func (s *stubVM) SSHTarget(*spec.Lab, string) (sshkeys.Target, error) {
	return sshkeys.Target{Node: "master", Addr: s.addr, User: "lab", KeyDir: filepath.Join(s.dir, "ssh"), KnownHosts: filepath.Join(s.dir, "known_hosts")}, nil
}

// TestWaitBooted: the shared readiness wait ends with the console's last
// lines when the VM stops, and with a timeout naming the address when SSH
// never answers.
func TestWaitBooted(t *testing.T) {
	l, err := spec.Parse([]byte("name: t\nnodes:\n  - {name: master, role: master, ip: 192.168.56.10}\n  - {name: s1, role: slave, ip: 192.168.56.11}\n"), "lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	console := filepath.Join(dir, "console.log")
	if err := os.WriteFile(console, []byte("boot\nKernel panic - not syncing: VFS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, tc := range []struct {
		name    string
		running bool
		want    []string
	}{
		{"stopped VM", false, []string{"node master: ssh: the VM stopped", "Kernel panic", "see " + console}},
		{"no ssh", true, []string{"no SSH login at " + addr, "after 3s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &stubVM{running: tc.running, console: console, addr: addr, dir: dir}
			var steps []string
			err := lab.WaitBooted(context.Background(), d, l, "master", func(s driver.Step) {
				if s.Err != nil {
					steps = append(steps, s.Step+" failed")
				}
			})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if len(steps) != 1 || steps[0] != "ssh failed" {
				t.Errorf("progress %v, want one failed ssh step", steps)
			}
		})
	}
}
