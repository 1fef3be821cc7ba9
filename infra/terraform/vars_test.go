package terraform

import (
	"strings"
	"testing"

	"github.com/calclab/calclab/infra/driver/qemu"
	"github.com/calclab/calclab/infra/spec"
)

func TestHyperVMACSharesQEMUHash(t *testing.T) {
	for _, tc := range []struct{ lab, node string }{{"calclab", "master"}, {"calclab", "slave-1"}, {"demo", "slave-1"}} {
		t.Run(tc.lab+"/"+tc.node, func(t *testing.T) {
			got := HyperVMAC(tc.lab, tc.node)
			q := strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(qemu.MAC(tc.lab, tc.node), "52:54:00:"), ":", ""))
			if got != "00155D"+q || len(got) != 12 {
				t.Errorf("HyperVMAC = %s, want 00155D%s", got, q)
			}
		})
	}
	if HyperVMAC("calclab", "slave-1") == HyperVMAC("calclab", "slave-2") {
		t.Error("two nodes share a MAC")
	}
}

func TestVarsFor(t *testing.T) {
	lab, err := spec.Parse([]byte("name: demo\nservices: {master_port: 5100, token: tok}\nnodes:\n  - {name: master, role: master, ip: 192.168.56.10}\n  - {name: slave-1, role: slave, ip: 192.168.56.11, cpus: 2}\n"), "lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v, err := VarsFor(lab, "state", "bin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(v.Lab.StateDir, "/state") || !strings.HasPrefix(v.Lab.StateDir, "/") {
		t.Errorf("state dir %q is not absolute", v.Lab.StateDir)
	}
	if v.Services.MasterPort != 5100 || v.Services.SlavePort != 6001 || v.Nodes["slave-1"].CPUs != 2 || v.Nodes["slave-1"].LocalPort != 6001 {
		t.Errorf("vars do not carry lab.yaml's values: %+v", v)
	}
	if len(v.Nodes) != 2 || v.Nodes["master"].Role != "master" {
		t.Errorf("nodes %+v", v.Nodes)
	}
}
