package vagrant

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calclab/calclab/infra/driver/qemu"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/infra/terraform"
	"github.com/calclab/calclab/provision/deploy"
)

// ruby runs a Ruby snippet with lab.rb loaded and returns its stdout.
func ruby(t *testing.T, code string, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("ruby"); err != nil {
		t.Skip("ruby is not installed (it comes with Debian's vagrant: apt-get install vagrant)")
	}
	cmd := exec.Command("ruby", append([]string{"-r", "./lab.rb", "-r", "json", "-e", code}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ruby: %v\n%s", err, stderr.String())
	}
	return out
}

const labYAML = `name: demo
network:
  cidr: 10.20.0.0/24
  gateway: 10.20.0.1
services:
  master_port: 5100
  slave_port: 6100
  policy: p2c
  token: s3cret
nodes:
  - {name: master, role: master, ip: 10.20.0.10, cpus: 2, memory_mb: 2048}
  - {name: slave-1, role: slave, ip: 10.20.0.11}
  - {name: slave-2, role: slave, ip: 10.20.0.12}
  - {name: slave-3, role: slave, ip: 10.20.0.13}
`

type derived struct {
	Name      string `json:"name"`
	HyperVMAC string `json:"hyperv_mac"`
	LibvirtMA string `json:"libvirt_mac"`
	Env       string `json:"env"`
	Unit      string `json:"unit"`
	CPUs      int    `json:"cpus"`
	Memory    int    `json:"memory_mb"`
}

// TestRubyMatchesGo loads the same lab.yaml in Ruby (as the Vagrantfile
// does) and in Go, and compares what each side derives.
func TestRubyMatchesGo(t *testing.T) {
	for _, tc := range []struct{ name, file string }{
		{"repo lab.yaml", "../../lab.yaml"},
		{"4 nodes, token, other network", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = filepath.Join(t.TempDir(), "lab.yaml")
				if err := os.WriteFile(file, []byte(labYAML), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			lab, err := spec.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			out := ruby(t, `l = Calclab::Lab.load(ARGV[0]); puts JSON.generate(l.nodes.map { |n|
				{name: n["name"], hyperv_mac: l.hyperv_mac(n["name"]), libvirt_mac: l.libvirt_mac(n["name"]),
				 env: Calclab.env_file(l, n), unit: Calclab.unit_text(n["role"]), cpus: n["cpus"], memory_mb: n["memory_mb"]} })`, file)
			var got []derived
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(got) != len(lab.Nodes) {
				t.Fatalf("ruby sees %d nodes, Go %d", len(got), len(lab.Nodes))
			}
			for i, n := range lab.Nodes {
				g := got[i]
				if g.Name != n.Name || g.CPUs != n.CPUs || g.Memory != n.Memory {
					t.Errorf("node %d: ruby %s %d cpu %d MiB, Go %s %d cpu %d MiB", i, g.Name, g.CPUs, g.Memory, n.Name, n.CPUs, n.Memory)
				}
				if want := qemu.MAC(lab.Name, n.Name); g.LibvirtMA != want {
					t.Errorf("%s: libvirt MAC %s, qemu.MAC %s", n.Name, g.LibvirtMA, want)
				}
				if want := terraform.HyperVMAC(lab.Name, n.Name); g.HyperVMAC != want {
					t.Errorf("%s: hv.mac %s, want %s", n.Name, g.HyperVMAC, want)
				}
				env, err := deploy.EnvFor(lab, n)
				if err != nil {
					t.Fatal(err)
				}
				envText, err := deploy.EnvFile(env)
				if err != nil {
					t.Fatal(err)
				}
				if g.Env != string(envText) {
					t.Errorf("%s: env file differs\nruby:\n%s\ngo:\n%s", n.Name, g.Env, envText)
				}
				u, err := deploy.UnitFor(n.Role)
				if err != nil {
					t.Fatal(err)
				}
				if g.Unit != u.Text() {
					t.Errorf("%s: unit differs\nruby:\n%s\ngo:\n%s", n.Name, g.Unit, u.Text())
				}
			}
		})
	}
}

// TestRubyRejectsBadLab: the Vagrantfile refuses what infra/spec refuses,
// naming the field.
func TestRubyRejectsBadLab(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"ip outside network", "nodes:\n  - {name: m, role: master, ip: 10.0.0.1}\n  - {name: s, role: slave, ip: 192.168.56.11}\n", "nodes[0].ip"},
		{"two masters", "nodes:\n  - {name: m, role: master, ip: 192.168.56.10}\n  - {name: s, role: master, ip: 192.168.56.11}\n", "exactly one master"},
		{"bad role", "nodes:\n  - {name: m, role: boss, ip: 192.168.56.10}\n", "nodes[0].role"},
		{"no slave", "nodes:\n  - {name: m, role: master, ip: 192.168.56.10}\n", "at least one slave"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := spec.Parse([]byte(tc.yaml), "lab.yaml"); err == nil {
				t.Fatalf("Go accepts it; the case is wrong")
			}
			file := filepath.Join(t.TempDir(), "lab.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			out := ruby(t, `begin; Calclab::Lab.load(ARGV[0]); puts "accepted"; rescue ArgumentError => e; puts e.message; end`, file)
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("ruby said %q, want it to name %q", out, tc.want)
			}
		})
	}
}

// TestVagrantCheckRefusesBrokenSettings runs scripts/vagrant-check.rb
// (Vagrant's own config classes) on the real Vagrantfile and on copies
// broken in the ways it must catch.
func TestVagrantCheckRefusesBrokenSettings(t *testing.T) {
	if testing.Short() {
		t.Skip("loads Vagrant (about 1.5 s per case); make vagrant-check runs it")
	}
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("vagrant is not installed (apt-get install vagrant)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(filepath.Join(root, "Vagrantfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"as committed", "", "", ""},
		{"bad auto start action", "hv.linked_clone = true", `hv.linked_clone = true; hv.auto_start_action = "Bogus"`, "auto start action"},
		{"MAC not pinned", "hv.mac = LAB.hyperv_mac(name)", "hv.mac = nil", "hv.mac is nil"},
		{"no bridge", "override.vm.network :public_network, bridge: LAB.network", "", "Vagrant would ask for a switch"},
		{"synced folder on", `config.vm.synced_folder ".", "/vagrant", disabled: true`, "", "synced folders enabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			vf := string(orig)
			if tc.from != "" {
				if !strings.Contains(vf, tc.from) {
					t.Fatalf("Vagrantfile has no %q", tc.from)
				}
				vf = strings.Replace(vf, tc.from, tc.to, 1)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(filepath.Join(dir, "Vagrantfile"), []byte(vf), 0o644))
			must(os.MkdirAll(filepath.Join(dir, "infra/vagrant"), 0o755))
			for _, f := range []string{"lab.rb", "hyperv.rb"} {
				b, err := os.ReadFile(f)
				must(err)
				must(os.WriteFile(filepath.Join(dir, "infra/vagrant", f), b, 0o644))
			}
			must(os.WriteFile(filepath.Join(dir, "lab.yaml"), []byte(labYAML), 0o644))
			// The file provisioner's validation wants the binaries to exist.
			must(os.MkdirAll(filepath.Join(dir, "bin/linux-amd64"), 0o755))
			for _, r := range []string{"master", "slave"} {
				must(os.WriteFile(filepath.Join(dir, "bin/linux-amd64", r), []byte("#!/bin/sh\n"), 0o755))
			}
			cmd := exec.Command("ruby", filepath.Join(root, "scripts/vagrant-check.rb"), dir)
			cmd.Env = append(os.Environ(), "VAGRANT_HOME="+filepath.Join(dir, ".vagrant.d"))
			out, err := cmd.CombinedOutput()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("vagrant-check failed: %v\n%s", err, out)
				}
				for _, n := range []string{"master", "slave-1", "slave-2", "slave-3"} {
					if !strings.Contains(string(out), n+" ") || !strings.Contains(string(out), "hyperv ok") {
						t.Errorf("output does not list %s as ok:\n%s", n, out)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("vagrant-check passed a Vagrantfile with %s:\n%s", tc.name, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, out)
			}
		})
	}
}
