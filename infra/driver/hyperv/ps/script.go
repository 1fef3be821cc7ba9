package ps

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Param is one value a script receives, assigned to $Name in its header.
type Param struct {
	Name string
	// Value is a string, an int, a bool, a []string, or JSON (an object
	// encoded as JSON, passed as a string literal, and decoded with
	// ConvertFrom-Json in the script).
	Value any
}

// JSON wraps a value passed to the script as structured data.
type JSON struct{ V any }

// Script is one step: a fixed body run after its parameters are assigned.
type Script struct {
	// Step names the script in a plan (02-switch) and in errors.
	Step string
	// Kind is the body's name (switch, nat, vm): what the script does,
	// whatever node it is for.
	Kind string
	// Params are assigned in order before the body runs.
	Params []Param
	// Body is the script's PowerShell text; it reads the parameters as
	// variables and must never have values spliced into it.
	Body string
}

var paramName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,63}$`)

// Prelude comes between the parameters and every body: errors stop the
// script, progress bars stay off the output stream (over SSH they would
// arrive as CLIXML), the result and any error leave as one marked JSON line
// each, and a terminating error ends the script with exit code 1.
const Prelude = `$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
try { [Console]::OutputEncoding = [Text.Encoding]::UTF8 } catch { }
function Send-Result($Data) { 'CALCLAB-RESULT ' + (ConvertTo-Json -InputObject $Data -Compress -Depth 6) }
function Stop-Step([string]$Id, [string]$Message) {
  throw [Management.Automation.ErrorRecord]::new([Exception]::new($Message), $Id, 'InvalidOperation', $null)
}
trap {
  $e = $_
  'CALCLAB-ERROR ' + (ConvertTo-Json -Compress -InputObject @{
    id = [string]$e.FullyQualifiedErrorId; category = [string]$e.CategoryInfo.Category
    message = [string]$e.Exception.Message; type = $e.Exception.GetType().FullName })
  exit 1
}
`

// Markers of the two lines a script's output is read from.
const (
	ResultMarker = "CALCLAB-RESULT "
	ErrorMarker  = "CALCLAB-ERROR "
)

// Header returns the parameter assignments, one per line.
func (s *Script) Header() (string, error) {
	var b strings.Builder
	seen := map[string]bool{}
	for _, p := range s.Params {
		if !paramName.MatchString(p.Name) {
			return "", fmt.Errorf("ps: %s: parameter name %q is not a PowerShell variable name", s.Step, p.Name)
		}
		key := strings.ToLower(p.Name) // PowerShell variables ignore case
		if seen[key] {
			return "", fmt.Errorf("ps: %s: parameter %s given twice", s.Step, p.Name)
		}
		seen[key] = true
		lit, err := literal(p.Value)
		if err != nil {
			return "", fmt.Errorf("ps: %s: parameter %s: %w", s.Step, p.Name, err)
		}
		fmt.Fprintf(&b, "$%s = %s\n", p.Name, lit)
	}
	return b.String(), nil
}

// Render returns the whole script: a comment naming the step, the
// parameters, the prelude and the body.
func (s *Script) Render() (string, error) {
	h, err := s.Header()
	if err != nil {
		return "", err
	}
	return "# calclab " + s.Step + " (" + s.Kind + ")\n" + h + Prelude + s.Body, nil
}

func literal(v any) (string, error) {
	switch v := v.(type) {
	case string:
		if err := Check(v); err != nil {
			return "", err
		}
		return Quote(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case bool:
		if v {
			return "$true", nil
		}
		return "$false", nil
	case []string:
		parts := make([]string, len(v))
		for i, s := range v {
			if err := Check(s); err != nil {
				return "", err
			}
			parts[i] = Quote(s)
		}
		return "@(" + strings.Join(parts, ", ") + ")", nil
	case JSON:
		data, err := json.Marshal(v.V)
		if err != nil {
			return "", err
		}
		if err := Check(string(data)); err != nil {
			return "", err
		}
		// Always an object: Windows PowerShell 5.1's ConvertFrom-Json emits
		// a top-level array as one object, so lists travel as its fields.
		if len(data) == 0 || data[0] != '{' {
			return "", fmt.Errorf("JSON parameter must be an object, got %s", data)
		}
		return "(" + Quote(string(data)) + " | ConvertFrom-Json)", nil
	default:
		return "", fmt.Errorf("unsupported value type %T", v)
	}
}

// String returns the string parameter name ("" when absent).
func (s *Script) String(name string) string {
	for _, p := range s.Params {
		if p.Name == name {
			if v, ok := p.Value.(string); ok {
				return v
			}
		}
	}
	return ""
}

// Int returns the int parameter name (0 when absent).
func (s *Script) Int(name string) int {
	for _, p := range s.Params {
		if p.Name == name {
			if v, ok := p.Value.(int); ok {
				return v
			}
		}
	}
	return 0
}

// Bool returns the bool parameter name.
func (s *Script) Bool(name string) bool {
	for _, p := range s.Params {
		if p.Name == name {
			v, _ := p.Value.(bool)
			return v
		}
	}
	return false
}

// Value returns the raw value of parameter name.
func (s *Script) Value(name string) any {
	for _, p := range s.Params {
		if p.Name == name {
			if j, ok := p.Value.(JSON); ok {
				return j.V
			}
			return p.Value
		}
	}
	return nil
}
