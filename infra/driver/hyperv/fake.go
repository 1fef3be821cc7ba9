package hyperv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
)

// FakeHost is a Hyper-V host in memory, for tests where no Windows runs:
// an ps.Executor that answers each script the way the script would on a
// real host (switches, host addresses, NATs, port mappings, VMs and the
// files on the host as a state machine, with the same error ids), and
// records every script it was given (rendered: quoting is exercised too).
// It is a fake: nothing here proves Hyper-V accepts the scripts.
type FakeHost struct {
	mu sync.Mutex
	// NotElevated, NoHyperV, ServiceOff and Build (default 20348, Server
	// 2022) shape the preflight's answer.
	NotElevated, NoHyperV, ServiceOff bool
	Build                             int
	// Switches maps a switch name to its type (Internal, External, Private).
	Switches map[string]string
	// IPs maps an IPv4 address to the interface alias that holds it.
	IPs map[string]string
	// NATs maps a NAT name to its internal prefix.
	NATs map[string]string
	// Mappings maps an external TCP port to "ip:port".
	Mappings map[int]string
	Rules    map[string]bool
	// Files are the files on the host (path -> bytes).
	Files map[string][]byte
	VMs   map[string]*FakeVM
	// OnStart is called (unlocked) when a VM starts: a test can bring up
	// what answers at the node's address.
	OnStart func(vm FakeVM)
	// Calls are the scripts run, in order.
	Calls []FakeCall
}

// FakeVM is a VM on the fake host.
type FakeVM struct {
	Name, Notes, State string
	Generation         int
	CPUs               int
	MemoryBytes        int64
	MAC, DVD, Disk     string
	SecureBoot         bool
	Template           string
	Switch             string
	Dir                string
}

// FakeCall is one script the fake ran.
type FakeCall struct {
	Step, Kind, Text string
}

// NewFakeHost is an empty, elevated Server 2022 host with Hyper-V on.
func NewFakeHost() *FakeHost {
	return &FakeHost{Build: 20348, Switches: map[string]string{}, IPs: map[string]string{}, NATs: map[string]string{},
		Mappings: map[int]string{}, Rules: map[string]bool{}, Files: map[string][]byte{}, VMs: map[string]*FakeVM{}}
}

// Steps lists the steps run, in order.
func (f *FakeHost) Steps() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, len(f.Calls))
	for i, c := range f.Calls {
		out[i] = c.Step
	}
	return out
}

// Put stores a file on the fake host (the upload of seeds and images).
func (f *FakeHost) Put(_ context.Context, path string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Files[path] = data
	return nil
}

func fail(step, id, msg string) error {
	return &ps.ScriptError{Step: step, ID: id + ",Stop-Step", Category: "InvalidOperation", Message: msg, ExitCode: 1}
}

// Run implements ps.Executor.
func (f *FakeHost) Run(_ context.Context, s *ps.Script) (json.RawMessage, error) {
	text, err := s.Render()
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.Calls = append(f.Calls, FakeCall{Step: s.Step, Kind: s.Kind, Text: text})
	r := map[string]any{}
	var started *FakeVM
	err = f.answer(s, r, &started)
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if started != nil && f.OnStart != nil {
		f.OnStart(*started)
	}
	return json.Marshal(r)
}

func (f *FakeHost) answer(s *ps.Script, r map[string]any, started **FakeVM) error {
	kinds := []string{s.Kind}
	if s.Kind == "network" {
		kinds = []string{"preflight", "switch", "hostip", "nat"}
	}
	for _, k := range kinds {
		if err := f.one(k, s, r, started); err != nil {
			return err
		}
	}
	return nil
}

func (f *FakeHost) one(kind string, s *ps.Script, r map[string]any, started **FakeVM) error {
	step := s.Step
	switch kind {
	case "preflight":
		r["preflight"] = map[string]any{"admin": !f.NotElevated, "build": f.Build}
		switch {
		case f.NoHyperV:
			return fail(step, "HyperVMissing", "The Hyper-V PowerShell module is not installed on this host")
		case f.ServiceOff:
			return fail(step, "HyperVOff", "The Hyper-V Virtual Machine Management service (vmms) is not running")
		case f.NotElevated:
			return fail(step, "NotElevated", "This PowerShell session is not elevated (Run as Administrator)")
		case f.Build < 14393:
			return fail(step, "SecureBootTemplateUnknown", fmt.Sprintf("Windows build %d has no MicrosoftUEFICertificateAuthority Secure Boot template", f.Build))
		}
	case "switch":
		name := s.String("SwitchName")
		out := map[string]any{"name": name, "created": false}
		r["switch"] = out
		if t, ok := f.Switches[name]; ok {
			if t != "Internal" {
				return fail(step, "SwitchNameTaken", fmt.Sprintf("A %s switch named '%s' already exists", t, name))
			}
			return nil
		}
		f.Switches[name] = "Internal"
		out["created"] = true
	case "hostip":
		alias := "vEthernet (" + s.String("SwitchName") + ")"
		ip := s.String("HostIP")
		out := map[string]any{"alias": alias, "ip": ip, "created": false}
		r["hostip"] = out
		if have, ok := f.IPs[ip]; ok {
			if have != alias {
				return fail(step, "HostAddressTaken", "The address "+ip+" is already on "+have)
			}
			return nil
		}
		if _, ok := f.Switches[s.String("SwitchName")]; !ok {
			return &ps.ScriptError{Step: step, ID: "CmdletizationQuery_NotFound_InterfaceAlias,New-NetIPAddress", Message: "No MSFT_NetAdapter objects found with property 'InterfaceAlias' equal to '" + alias + "'"}
		}
		f.IPs[ip] = alias
		out["created"] = true
	case "nat":
		name, cidr := s.String("NatName"), s.String("CIDR")
		want := netip.MustParsePrefix(cidr)
		out := map[string]any{"name": name, "created": false, "reused": false}
		r["nat"] = out
		var others []string
		for _, n := range sortedKeys(f.NATs) {
			have := netip.MustParsePrefix(f.NATs[n])
			switch {
			case have.Bits() <= want.Bits() && have.Contains(want.Addr()):
				out["name"], out["reused"] = n, true
				return nil
			case have.Overlaps(want) || n == name:
				return fail(step, "NatConflict", fmt.Sprintf("The NAT network '%s' (%s) overlaps %s without covering it", n, have, cidr))
			default:
				others = append(others, fmt.Sprintf("%s (%s)", n, have))
			}
		}
		if len(others) > 0 {
			// Client Windows allows one NAT network: New-NetNat fails.
			return fail(step, "NatConflict", "New-NetNat failed (The parameter is incorrect.); this host already has the NAT network "+strings.Join(others, ", "))
		}
		f.NATs[name] = cidr
		out["created"] = true
	case "image":
		base, src := s.String("BaseVhdx"), s.String("Source")
		out := map[string]any{"path": base, "created": false}
		r["image"] = out
		if _, ok := f.Files[base]; !ok {
			data, ok := f.Files[src]
			if !ok {
				return fail(step, "ImageMissing", "The image "+src+" does not exist")
			}
			lower := strings.ToLower(src)
			if !strings.HasSuffix(lower, ".vhd") && !strings.HasSuffix(lower, ".vhdx") {
				return fail(step, "ImageNotVhdx", "The image "+src+" is not a VHD or VHDX; convert it: qemu-img convert -O vhdx -o subformat=dynamic IMAGE "+base)
			}
			f.Files[base] = data
			out["created"] = true
		}
	case "vm":
		name := s.String("VMName")
		out := map[string]any{"name": name, "created": false, "disk": false}
		r["vm"] = out
		vm := f.VMs[name]
		if vm != nil && vm.Notes != s.String("Notes") {
			return fail(step, "VMNameTaken", "A VM named '"+name+"' already exists and this lab did not create it")
		}
		disk := s.String("DiskPath")
		if _, ok := f.Files[disk]; !ok {
			if _, ok := f.Files[s.String("BaseVhdx")]; !ok {
				return &ps.ScriptError{Step: step, ID: "InvalidParameter,Microsoft.Vhd.PowerShell.Cmdlets.NewVhd", Message: "The system cannot find the file specified: " + s.String("BaseVhdx")}
			}
			f.Files[disk] = []byte("differencing disk of " + s.String("BaseVhdx"))
			out["disk"] = true
		}
		if vm == nil {
			if _, ok := f.Switches[s.String("SwitchName")]; !ok {
				return &ps.ScriptError{Step: step, ID: "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.NewVM", Message: "Hyper-V was unable to find a virtual switch with name \"" + s.String("SwitchName") + "\"."}
			}
			vm = &FakeVM{Name: name, Notes: s.String("Notes"), State: "Off", Generation: 2, Switch: s.String("SwitchName"), Disk: disk, Dir: s.String("Dir")}
			f.VMs[name] = vm
			out["created"] = true
		}
		if vm.State == "Off" {
			if f.Build < 14393 {
				return &ps.ScriptError{Step: step, ID: "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.SetVMFirmware", Message: "A parameter cannot be found that matches parameter name 'SecureBootTemplate'."}
			}
			seed := s.String("SeedIso")
			if _, ok := f.Files[seed]; !ok {
				return &ps.ScriptError{Step: step, ID: "ObjectNotFound,Microsoft.HyperV.PowerShell.Commands.AddVMDvdDrive", Message: "Failed to add device 'Virtual CD/DVD Disk': the file " + seed + " does not exist"}
			}
			vm.CPUs, vm.MemoryBytes = s.Int("CPUs"), s.Value("MemoryBytes").(int64)
			vm.SecureBoot, vm.Template = true, "MicrosoftUEFICertificateAuthority"
			vm.MAC, vm.DVD = s.String("MAC"), seed
		}
		out["state"] = vm.State
	case "start":
		name := s.String("VMName")
		vm := f.VMs[name]
		if vm == nil {
			return fail(step, "VMMissing", "There is no VM named '"+name+"'")
		}
		out := map[string]any{"name": name, "started": false}
		r["start"] = out
		if vm.State != "Running" {
			vm.State = "Running"
			out["started"] = true
			c := *vm
			*started = &c
		}
	case "stop":
		name := s.String("VMName")
		out := map[string]any{"name": name, "stopped": false}
		r["stop"] = out
		if vm := f.VMs[name]; vm != nil && vm.State != "Off" {
			vm.State = "Off"
			out["stopped"] = true
		}
	case "publish":
		var ports struct {
			Items []PortMapping `json:"items"`
		}
		raw, _ := json.Marshal(s.Value("Ports"))
		if err := json.Unmarshal(raw, &ports); err != nil {
			return err
		}
		if _, ok := f.NATs[s.String("NatName")]; !ok {
			return &ps.ScriptError{Step: step, ID: "Windows System Error 87,New-NetNatStaticMapping", Message: "The parameter is incorrect."}
		}
		var mappings []int
		var rules []string
		for _, m := range ports.Items {
			to := fmt.Sprintf("%s:%d", m.IP, m.GuestPort)
			if have, ok := f.Mappings[m.Port]; ok && have != to {
				return fail(step, "PortTaken", fmt.Sprintf("Port %d of the host is already mapped to %s", m.Port, have))
			} else if !ok {
				f.Mappings[m.Port] = to
				mappings = append(mappings, m.Port)
			}
			if !f.Rules[m.Rule] {
				f.Rules[m.Rule] = true
				rules = append(rules, m.Rule)
			}
		}
		r["publish"] = map[string]any{"mappings": nonNilInts(mappings), "rules": nonNil(rules)}
	case "status":
		names, _ := s.Value("VMNames").([]string)
		vms := []map[string]any{}
		for _, n := range names {
			if vm := f.VMs[n]; vm != nil {
				vms = append(vms, map[string]any{"name": vm.Name, "state": vm.State, "notes": vm.Notes, "uptime_s": 0})
			}
		}
		r["vms"] = vms
	case "unpublish":
		var ports struct {
			Mappings []int    `json:"mappings"`
			Rules    []string `json:"rules"`
		}
		raw, _ := json.Marshal(s.Value("Ports"))
		if err := json.Unmarshal(raw, &ports); err != nil {
			return err
		}
		for _, p := range ports.Mappings {
			delete(f.Mappings, p)
		}
		for _, rule := range ports.Rules {
			delete(f.Rules, rule)
		}
		r["unpublish"] = map[string]any{"done": true}
	case "vmremove":
		name := s.String("VMName")
		out := map[string]any{"name": name, "removed": false}
		r["vmremove"] = out
		if vm := f.VMs[name]; vm != nil && s.Bool("RemoveVM") {
			if vm.Notes != s.String("Notes") {
				return fail(step, "VMNotOurs", "The VM '"+name+"' was not created by this lab; it is left alone")
			}
			delete(f.VMs, name)
			out["removed"] = true
		}
		files, _ := s.Value("Files").([]string)
		for _, p := range files {
			delete(f.Files, p)
		}
		dirs, _ := s.Value("Dirs").([]string)
		for _, d := range dirs {
			for p := range f.Files {
				if strings.HasPrefix(p, d+`\`) {
					delete(f.Files, p)
				}
			}
		}
	case "netremove":
		if s.Bool("RemoveNat") {
			delete(f.NATs, s.String("NatName"))
		}
		if s.Bool("RemoveHostIP") {
			delete(f.IPs, s.String("HostIP"))
		}
		if s.Bool("RemoveSwitch") {
			sw := s.String("SwitchName")
			for _, vm := range f.VMs {
				if vm.Switch == sw {
					return &ps.ScriptError{Step: step, ID: "InvalidOperation,Microsoft.HyperV.PowerShell.Commands.RemoveVMSwitch", Message: "The switch is in use by " + vm.Name}
				}
			}
			delete(f.Switches, sw)
			for ip, alias := range f.IPs {
				if alias == "vEthernet ("+sw+")" {
					delete(f.IPs, ip)
				}
			}
		}
		files, _ := s.Value("Files").([]string)
		for _, p := range files {
			delete(f.Files, p)
		}
		r["netremove"] = map[string]any{"nat": s.Bool("RemoveNat"), "hostip": s.Bool("RemoveHostIP"), "switch": s.Bool("RemoveSwitch")}
	default:
		return fmt.Errorf("fake Hyper-V host: no script kind %q", kind)
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func nonNilInts(s []int) []int {
	if s == nil {
		return []int{}
	}
	return s
}
