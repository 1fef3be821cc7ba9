package hyperv

import (
	"errors"
	"strings"
	"testing"

	"github.com/calclab/calclab/infra/driver/hyperv/ps"
)

// TestExplain maps what PowerShell and the Hyper-V cmdlets report (their
// FullyQualifiedErrorIds and messages, and the scripts' own ids) to words.
func TestExplain(t *testing.T) {
	tests := []struct {
		name string
		err  *ps.ScriptError
		want string
	}{
		{"script id", &ps.ScriptError{ID: "NotElevated,Stop-Step"}, ProblemNotElevated},
		{"cmdlet access denied", &ps.ScriptError{ID: "AccessDenied,Microsoft.HyperV.PowerShell.Commands.NewVM", Message: "You do not have the required permission to complete this task."}, ProblemNotElevated},
		{"CIM permission", &ps.ScriptError{ID: "Windows System Error 5,New-NetNat", Category: "PermissionDenied", Message: "Access denied"}, ProblemNotElevated},
		{"no Hyper-V module", &ps.ScriptError{ID: "CommandNotFoundException", Message: "The term 'Get-VMSwitch' is not recognized as the name of a cmdlet"}, ProblemHyperVOff},
		{"vmms down", &ps.ScriptError{ID: "HyperVOff,Stop-Step"}, ProblemHyperVOff},
		{"old host parameter", &ps.ScriptError{ID: "NamedParameterNotFound,Microsoft.HyperV.PowerShell.Commands.SetVMFirmware", Message: "A parameter cannot be found that matches parameter name 'SecureBootTemplate'."}, ProblemTemplate},
		{"switch", &ps.ScriptError{ID: "SwitchNameTaken,Stop-Step", Message: "A External switch named 'x' already exists"}, ProblemSwitchTaken},
		{"image", &ps.ScriptError{ID: "ImageMissing,Stop-Step", Message: "The image C:\\x.img does not exist"}, ProblemImageMissing},
		{"nat", &ps.ScriptError{ID: "NatConflict,Stop-Step", Message: "The NAT network 'DockerNAT' (10.0.75.0/24) overlaps"}, ProblemNAT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.err.Step = "04-nat"
			err := Explain(tt.err)
			var he *HostError
			if !errors.As(err, &he) || !strings.Contains(he.Problem, tt.want) || he.Fix == "" {
				t.Fatalf("Explain = %v", err)
			}
			if !errors.Is(err, tt.err) || !strings.HasPrefix(err.Error(), "04-nat: ") {
				t.Fatalf("the PowerShell error is not kept: %v", err)
			}
		})
	}
	other := &ps.ScriptError{ID: "Something,Else", Message: "odd"}
	if err := Explain(other); err != error(other) {
		t.Fatalf("unknown error changed: %v", err)
	}
}
