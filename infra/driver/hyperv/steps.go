package hyperv

import (
	"embed"
	"fmt"
	"strings"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
	"github.com/calclab/calclab/infra/spec"
)

//go:embed scripts/*.ps1
var bodies embed.FS

// body is the fixed text of kinds, one fragment each, run in order; each
// fragment adds its part to the result hashtable $r.
func body(kinds ...string) string {
	var b strings.Builder
	b.WriteString("$r = @{}\n")
	for _, k := range kinds {
		data, err := bodies.ReadFile("scripts/" + k + ".ps1")
		if err != nil {
			panic("hyperv: no script " + k) // a build error: every kind is embedded
		}
		b.Write(data)
	}
	b.WriteString("Send-Result $r\n")
	return b.String()
}

func script(step, kind string, params ...ps.Param) *ps.Script {
	return &ps.Script{Step: step, Kind: kind, Params: params, Body: body(kind)}
}

func p(name string, v any) ps.Param { return ps.Param{Name: name, Value: v} }

// PreflightScript checks the host: elevated, Hyper-V on, new enough.
func PreflightScript() *ps.Script { return script("01-preflight", "preflight") }

// NetworkScripts are the switch, its host address and the NAT, one
// script each (what lab up runs, in order).
func NetworkScripts(lab *spec.Lab) []*ps.Script {
	l := Layout{Lab: lab}
	return []*ps.Script{
		script("02-switch", "switch", p("SwitchName", lab.Network.Name)),
		script("03-hostip", "hostip", p("SwitchName", lab.Network.Name), p("HostIP", lab.HostIP().String()), p("PrefixLength", Prefix(lab))),
		script("04-nat", "nat", p("NatName", l.NatName()), p("CIDR", lab.Network.CIDR)),
	}
}

// NetworkScript is the switch, host address and NAT as one script (the
// plan's network.ps1, which the Vagrantfile runs on the host).
func NetworkScript(lab *spec.Lab) *ps.Script {
	l := Layout{Lab: lab}
	return &ps.Script{Step: "network", Kind: "network", Params: []ps.Param{
		p("SwitchName", lab.Network.Name), p("HostIP", lab.HostIP().String()), p("PrefixLength", Prefix(lab)),
		p("NatName", l.NatName()), p("CIDR", lab.Network.CIDR),
	}, Body: body("preflight", "switch", "hostip", "nat")}
}

// ImageScript makes the base VHDX from source (a path on the host).
func ImageScript(l Layout, source string) *ps.Script {
	return script("05-image", "image", p("Dir", l.Dir()), p("Source", source), p("BaseVhdx", l.BaseVhdx()))
}

// VMScript creates (or converges) one node's VM; i numbers the step.
func VMScript(l Layout, i int, n spec.Node, macAddr string) *ps.Script {
	return script(fmt.Sprintf("%02d-vm-%s", 6+i, n.Name), "vm",
		p("VMName", l.VMName(n.Name)), p("Notes", l.Notes(n.Name)), p("Dir", l.NodeDir(n.Name)),
		p("BaseVhdx", l.BaseVhdx()), p("DiskPath", l.DiskPath(n.Name)), p("DiskBytes", int64(n.Disk)<<30),
		p("SeedIso", l.SeedPath(n.Name)), p("SwitchName", l.Lab.Network.Name),
		p("CPUs", n.CPUs), p("MemoryBytes", int64(n.Memory)<<20), p("MAC", HyperVMAC(macAddr)))
}

// StartScript starts one node's VM.
func StartScript(l Layout, step int, n spec.Node) *ps.Script {
	return script(fmt.Sprintf("%02d-start-%s", step, n.Name), "start", p("VMName", l.VMName(n.Name)))
}

// PortMapping is one published port: host:Port -> IP:GuestPort.
type PortMapping struct {
	Node      string `json:"node"`
	Port      int    `json:"port"`
	IP        string `json:"ip"`
	GuestPort int    `json:"guest_port"`
	Rule      string `json:"rule"`
}

// Mappings are the ports a remote host publishes: every node's service on
// its local_port (the master on master_port), so newman and lab status
// reach them from the client.
func Mappings(lab *spec.Lab) []PortMapping {
	l := Layout{Lab: lab}
	var out []PortMapping
	for _, n := range lab.Nodes {
		out = append(out, PortMapping{Node: n.Name, Port: n.LocalPort, IP: n.IP, GuestPort: GuestPort(lab, n), Rule: l.FirewallRule(n.Name)})
	}
	return out
}

// PublishScript publishes the mappings on the NAT named nat.
func PublishScript(step int, nat string, m []PortMapping) *ps.Script {
	return script(fmt.Sprintf("%02d-publish", step), "publish", p("NatName", nat), p("Ports", ps.JSON{V: map[string]any{"items": m}}))
}

// StatusScript lists the lab's VMs.
func StatusScript(l Layout) *ps.Script {
	names := make([]string, len(l.Lab.Nodes))
	for i, n := range l.Lab.Nodes {
		names[i] = l.VMName(n.Name)
	}
	return script("status", "status", p("VMNames", names))
}

// UnpublishScript removes the mappings and rules lab added.
func UnpublishScript(nat string, ports []int, rules []string) *ps.Script {
	if ports == nil {
		ports = []int{}
	}
	if rules == nil {
		rules = []string{}
	}
	return script("down-unpublish", "unpublish", p("NatName", nat), p("Ports", ps.JSON{V: map[string]any{"mappings": ports, "rules": rules}}))
}

// VMRemoveScript removes a node's VM (when vm: lab made it) and the
// files and folders lab made for it.
func VMRemoveScript(l Layout, node string, vm bool, files, dirs []string) *ps.Script {
	return script("down-vm-"+node, "vmremove", p("VMName", l.VMName(node)), p("Notes", l.Notes(node)), p("RemoveVM", vm),
		p("Files", nonNil(files)), p("Dirs", nonNil(dirs)))
}

// NetRemoveScript removes what lab created of the network, and its files.
func NetRemoveScript(l Layout, nat bool, natName string, hostIP bool, sw bool, files []string) *ps.Script {
	return script("down-network", "netremove", p("NatName", natName), p("RemoveNat", nat),
		p("HostIP", l.Lab.HostIP().String()), p("RemoveHostIP", hostIP),
		p("SwitchName", l.Lab.Network.Name), p("RemoveSwitch", sw), p("Files", nonNil(files)), p("Dir", l.Dir()))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// StopScript shuts one node's VM down.
func StopScript(l Layout, node string) *ps.Script {
	return script("stop-"+node, "stop", p("VMName", l.VMName(node)))
}
