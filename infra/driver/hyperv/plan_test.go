package hyperv

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
	"github.com/calclab/calclab/infra/driver/hyperv/ps/pstest"
	"github.com/calclab/calclab/infra/spec"
	"github.com/calclab/calclab/provision/cloudinit"
)

var update = flag.Bool("update", false, "rewrite the golden scripts under testdata/golden")

// testKey is a fixed public key, so the seeds (and goldens) are stable.
const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx1Dwbu0n4mR0PRxvfnsTbXw93H5Z7pZEe1TQkzg0oE calclab-test"

func loadLab(t *testing.T, remote bool) *spec.Lab {
	t.Helper()
	lab, err := spec.Load(filepath.Join("testdata", "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !remote {
		lab.HyperV.Host, lab.HyperV.User = "", ""
		lab.HyperV.Image = `C:\images\noble.vhdx`
	}
	return lab
}

// TestGoldenScripts compares every step's script with its golden file
// (go test -run Golden -update rewrites them after a deliberate change).
func TestGoldenScripts(t *testing.T) {
	pl, err := NewPlan(loadLab(t, true), testKey)
	if err != nil {
		t.Fatal(err)
	}
	scripts := append(append([]*ps.Script(nil), pl.Scripts...), NetworkScript(pl.Layout.Lab), StatusScript(pl.Layout),
		UnpublishScript(pl.Layout.NatName(), []int{5000}, []string{"calclab calclab master"}),
		VMRemoveScript(pl.Layout, "master", true, []string{pl.Layout.DiskPath("master"), pl.Layout.SeedPath("master")}, []string{pl.Layout.NodeDir("master")}),
		NetRemoveScript(pl.Layout, true, pl.Layout.NatName(), true, true, []string{pl.Layout.BaseVhdx()}),
		StopScript(pl.Layout, "slave-2"))
	want := []string{"01-preflight", "02-switch", "03-hostip", "04-nat", "05-image", "06-vm-master", "07-vm-slave-1", "08-vm-slave-2",
		"09-start-master", "10-start-slave-1", "11-start-slave-2", "12-publish"}
	for i, w := range want {
		if pl.Scripts[i].Step != w {
			t.Fatalf("step %d is %s, want %s", i, pl.Scripts[i].Step, w)
		}
	}
	for _, s := range scripts {
		t.Run(s.Step, func(t *testing.T) {
			got, err := s.Render()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", s.Step+".ps1")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run Golden -update)", err)
			}
			if got != string(want) {
				t.Fatalf("%s differs from %s:\n%s", s.Step, path, got)
			}
		})
	}
}

// TestPlanScriptsParse writes the plans of a remote and a local lab the way
// `lab plan --out` does and parses every .ps1 with tree-sitter-powershell,
// together with the down and status scripts.
func TestPlanScriptsParse(t *testing.T) {
	pstest.Require(t)
	var files []string
	for _, remote := range []bool{true, false} {
		lab := loadLab(t, remote)
		pl, err := NewPlan(lab, testKey)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := pl.Write(dir); err != nil {
			t.Fatal(err)
		}
		extra := []*ps.Script{StatusScript(pl.Layout), UnpublishScript(pl.Layout.NatName(), nil, nil),
			VMRemoveScript(pl.Layout, "slave-1", false, nil, nil), NetRemoveScript(pl.Layout, false, "x", false, false, nil),
			StopScript(pl.Layout, "master")}
		for _, s := range extra {
			text, err := s.Render()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, s.Step+".ps1"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := filepath.Glob(filepath.Join(dir, "*.ps1"))
		if len(got) != len(pl.Scripts)+1+len(extra) {
			t.Fatalf("%d scripts written, want %d", len(got), len(pl.Scripts)+1+len(extra))
		}
		files = append(files, got...)
	}
	pstest.ParseFiles(t, files)
	t.Logf("%d generated scripts parse", len(files))
}

// TestPlanWritesSeedsMatchingMACs: each node's network-config (on its
// seed ISO and beside it) matches the MAC its VM script sets, in
// Hyper-V's prefix, and gives the node its static address.
func TestPlanWritesSeedsMatchingMACs(t *testing.T) {
	lab := loadLab(t, true)
	pl, err := NewPlan(lab, testKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := pl.Write(dir); err != nil {
		t.Fatal(err)
	}
	for i, n := range lab.Nodes {
		t.Run(n.Name, func(t *testing.T) {
			nc, err := os.ReadFile(filepath.Join(dir, n.Name, cloudinit.NetworkConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			vm := pl.Scripts[5+i]
			mac := vm.String("MAC")
			if len(mac) != 12 || !strings.HasPrefix(mac, "00155D") {
				t.Fatalf("VM script MAC %q", mac)
			}
			colon := strings.ToLower(mac[0:2] + ":" + mac[2:4] + ":" + mac[4:6] + ":" + mac[6:8] + ":" + mac[8:10] + ":" + mac[10:12])
			if !strings.Contains(string(nc), `macaddress: "`+colon+`"`) {
				t.Fatalf("network-config does not match %s:\n%s", colon, nc)
			}
			if !strings.Contains(string(nc), `"`+n.IP+`/24"`) || !strings.Contains(string(nc), `via: "192.168.56.1"`) {
				t.Fatalf("network-config lacks the address or route:\n%s", nc)
			}
			iso, err := os.ReadFile(filepath.Join(dir, n.Name, "seed.iso"))
			if err != nil || !strings.Contains(string(iso), colon) {
				t.Fatalf("seed.iso does not hold the network-config (%v)", err)
			}
			if MAC(lab.Name, n.Name) != colon {
				t.Fatalf("MAC(%s, %s) = %s, VM script says %s", lab.Name, n.Name, MAC(lab.Name, n.Name), colon)
			}
		})
	}
	for _, name := range []string{"01-preflight.ps1", "network.ps1", "12-publish.ps1", "README.txt"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScriptSizes: over SSH a script longer than cmd.exe's command line
// goes through the stdin bootstrap; locally every script fits the
// command line itself.
func TestScriptSizes(t *testing.T) {
	pl, err := NewPlan(loadLab(t, true), testKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pl.Scripts {
		text, err := s.Render()
		if err != nil {
			t.Fatal(err)
		}
		argv, stdin := ps.Argv("powershell", text, ps.CmdExeMax)
		if _, local := ps.Argv("powershell.exe", text, ps.CreateProcessMax); local != nil {
			t.Errorf("%s: %d characters do not fit a local command line", s.Step, len(text))
		}
		t.Logf("%-18s %5d chars, over ssh via %s", s.Step, len(text), map[bool]string{true: "stdin", false: "argument"}[stdin != nil])
		_ = argv
	}
}
