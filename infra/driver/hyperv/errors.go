package hyperv

import (
	"errors"
	"strings"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
)

// HostError is a script's failure said in words a Windows user acts on:
// what is wrong and what to do, with PowerShell's own error kept.
type HostError struct {
	Step    string
	Problem string
	Fix     string
	Err     *ps.ScriptError
}

func (e *HostError) Error() string {
	s := e.Step + ": " + e.Problem
	if e.Fix != "" {
		s += ". " + e.Fix
	}
	if e.Err != nil {
		said := e.Err.Message
		if said == "" {
			said = e.Err.Stderr
		}
		if e.Err.ID != "" {
			said += " [" + e.Err.ID + "]"
		}
		if said != "" {
			s += " (PowerShell: " + strings.TrimSpace(said) + ")"
		}
	}
	return s
}

func (e *HostError) Unwrap() error { return e.Err }

// Kinds of host problems (HostError.Problem starts with one of these).
const (
	ProblemNotElevated  = "not elevated"
	ProblemHyperVOff    = "Hyper-V is off"
	ProblemSwitchTaken  = "switch name taken"
	ProblemImageMissing = "image missing"
	ProblemTemplate     = "Secure Boot template unknown"
	ProblemNAT          = "NAT conflict"
)

const fixElevated = "Run lab from an elevated PowerShell (Run as Administrator); over SSH, log in as a member of the host's Administrators group. Membership of \"Hyper-V Administrators\" alone manages VMs but cannot give the switch its address or create the NAT"

// Explain turns a script's error into a HostError when it is one a
// Windows user meets; any other error comes back unchanged.
func Explain(err error) error {
	var se *ps.ScriptError
	if !errors.As(err, &se) {
		return err
	}
	id, msg := se.ErrorID(), se.Message+" "+se.Stderr
	has := func(subs ...string) bool {
		for _, s := range subs {
			if strings.Contains(strings.ToLower(msg), strings.ToLower(s)) || strings.Contains(strings.ToLower(se.ID), strings.ToLower(s)) {
				return true
			}
		}
		return false
	}
	he := &HostError{Step: se.Step, Err: se}
	switch {
	case id == "NotElevated" || se.Category == "PermissionDenied" ||
		has("AccessDenied", "Access is denied", "required permission", "Access denied"):
		he.Problem, he.Fix = ProblemNotElevated+": Hyper-V refused this account", fixElevated
	case id == "HyperVMissing" || (id == "CommandNotFoundException" && has("-VM", "VMSwitch", "VHD")):
		he.Problem = ProblemHyperVOff + ": the Hyper-V feature is not enabled on this host"
		he.Fix = "Windows 10/11 Pro or Enterprise: Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V -All; Windows Server: Install-WindowsFeature -Name Hyper-V -IncludeManagementTools -Restart. Then reboot and run lab up again"
	case id == "HyperVOff" || has("virtual machine management service", "hypervisor is not running"):
		he.Problem = ProblemHyperVOff + ": the Hyper-V service (vmms) or the hypervisor is not running"
		he.Fix = "Start-Service vmms; if the hypervisor does not run, turn on virtualization (VT-x/AMD-V) in the firmware and run bcdedit /set hypervisorlaunchtype auto, then reboot"
	case id == "SwitchNameTaken":
		he.Problem = ProblemSwitchTaken + ": " + se.Message
		he.Fix = "Choose another network.name in lab.yaml, or remove that switch (Remove-VMSwitch -Name ...) if nothing uses it"
	case id == "ImageMissing":
		he.Problem = ProblemImageMissing + ": " + se.Message
		he.Fix = "Download Ubuntu's cloud image (noble-server-cloudimg-amd64.img) and set hyperv.image in lab.yaml to its path"
	case id == "ImageNotVhdx":
		he.Problem = ProblemImageMissing + ": " + se.Message
		he.Fix = "Install qemu-img on the machine that runs lab (it converts the image itself), or convert it by hand as shown"
	case id == "SecureBootTemplateUnknown" || has("SecureBootTemplate"):
		he.Problem = ProblemTemplate + ": this host's Hyper-V does not know MicrosoftUEFICertificateAuthority"
		he.Fix = "Ubuntu's shim is signed by the Microsoft UEFI CA, so the VM needs that template: update the host to Windows 10 1607 / Server 2016 or later"
	case id == "NatConflict":
		he.Problem = ProblemNAT + ": " + se.Message
		he.Fix = "Get-NetNat lists them: remove the conflicting NAT (Remove-NetNat -Name ...) if nothing uses it, or choose a network.cidr inside it"
	case id == "HostAddressTaken" || id == "PortTaken" || id == "VMNameTaken" || id == "VMNotOurs" || id == "VMMissing":
		he.Problem = se.Message
		he.Fix = map[string]string{
			"HostAddressTaken": "Choose another network.gateway (or network.cidr) in lab.yaml",
			"PortTaken":        "Change the node's local_port in lab.yaml, or remove that mapping (Remove-NetNatStaticMapping)",
			"VMNameTaken":      "Rename or remove that VM, or change the lab's name in lab.yaml",
			"VMNotOurs":        "lab down leaves VMs it did not create alone",
			"VMMissing":        "Run lab up again: it recreates the VM",
		}[id]
	default:
		return err
	}
	return he
}
