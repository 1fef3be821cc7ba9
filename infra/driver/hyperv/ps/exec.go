package ps

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"regexp"
	"strings"
	"unicode/utf16"
)

// Executor runs a script and returns the JSON its body sent with
// Send-Result.
type Executor interface {
	Run(ctx context.Context, s *Script) (json.RawMessage, error)
}

// Transport runs one program with arguments (and stdin) somewhere: on this
// machine, or on a Windows host over SSH. A program that ran and exited
// non-zero is not an error of Exec: it returns the exit code.
type Transport interface {
	Exec(ctx context.Context, argv []string, stdin []byte) (stdout, stderr []byte, exitCode int, err error)
	// MaxCommandLine is the longest command line the far side accepts:
	// 8191 characters for cmd.exe (OpenSSH's default shell on Windows),
	// 32767 for CreateProcess.
	MaxCommandLine() int
	// Where names the far side in errors ("this machine", "host x").
	Where() string
}

// Command lines the far side's limits.
const (
	CmdExeMax        = 8191
	CreateProcessMax = 32767
)

// EncodeCommand returns script as -EncodedCommand wants it: base64 of its
// UTF-16LE bytes.
func EncodeCommand(script string) string {
	u := utf16.Encode([]rune(script))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// DecodeCommand is the inverse of EncodeCommand.
func DecodeCommand(enc string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return "", err
	}
	if len(b)%2 != 0 {
		return "", errors.New("ps: odd number of bytes for UTF-16LE")
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	return string(utf16.Decode(u)), nil
}

// Bootstrap is the script sent with -EncodedCommand when the whole script
// would make the command line too long for the far side: it reads the
// script, encoded the same way, from standard input and runs it (what
// Ansible's Windows SSH connection does with its payloads).
const Bootstrap = `$b = ($input | Out-String).Trim(); & ([scriptblock]::Create([Text.Encoding]::Unicode.GetString([Convert]::FromBase64String($b))))`

// Shell is the Executor that renders a script and runs it with
// powershell -NoProfile -NonInteractive -EncodedCommand over a Transport.
type Shell struct {
	T Transport
	// Program is the PowerShell to run; default "powershell" (Windows
	// PowerShell 5.1, which every supported Windows has).
	Program string
}

// Argv returns the command that runs script on the far side and the
// standard input to send with it: the script itself when the command line
// fits in max characters, else the Bootstrap with the script on stdin.
func Argv(program, script string, max int) (argv []string, stdin []byte) {
	if program == "" {
		program = "powershell"
	}
	argv = []string{program, "-NoProfile", "-NonInteractive", "-EncodedCommand", EncodeCommand(script)}
	if len(strings.Join(argv, " ")) <= max {
		return argv, nil
	}
	argv[len(argv)-1] = EncodeCommand(Bootstrap)
	return argv, []byte(EncodeCommand(script) + "\r\n")
}

// Run implements Executor.
func (sh *Shell) Run(ctx context.Context, s *Script) (json.RawMessage, error) {
	text, err := s.Render()
	if err != nil {
		return nil, err
	}
	argv, stdin := Argv(sh.Program, text, sh.T.MaxCommandLine())
	stdout, stderr, code, err := sh.T.Exec(ctx, argv, stdin)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", s.Step, sh.T.Where(), err)
	}
	return ParseOutput(s.Step, stdout, stderr, code)
}

// ScriptError is a script's terminating error as PowerShell reported it.
type ScriptError struct {
	Step     string
	ID       string `json:"id"` // FullyQualifiedErrorId
	Category string `json:"category"`
	Message  string `json:"message"`
	Type     string `json:"type"` // the exception's .NET type
	ExitCode int
	Stderr   string
}

func (e *ScriptError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Stderr
	}
	if msg == "" {
		msg = fmt.Sprintf("exit code %d and no output", e.ExitCode)
	}
	if e.ID != "" {
		return fmt.Sprintf("%s: %s [%s]", e.Step, msg, e.ID)
	}
	return fmt.Sprintf("%s: %s", e.Step, msg)
}

// ErrorID is the part of the FullyQualifiedErrorId before the command
// name: "NotElevated" for "NotElevated,Stop-Step".
func (e *ScriptError) ErrorID() string {
	id, _, _ := strings.Cut(e.ID, ",")
	return id
}

// ParseOutput reads a script's result from its output: the JSON after the
// result marker, or the error after the error marker, or (a script that
// died before its trap, or a missing powershell) the exit code and stderr.
func ParseOutput(step string, stdout, stderr []byte, exitCode int) (json.RawMessage, error) {
	var result json.RawMessage
	sc := bufio.NewScanner(bytes.NewReader(stdout))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, ErrorMarker):
			e := &ScriptError{Step: step, ExitCode: exitCode, Stderr: Stderr(stderr)}
			if err := json.Unmarshal([]byte(line[len(ErrorMarker):]), e); err != nil {
				e.Message = line[len(ErrorMarker):]
			}
			return nil, e
		case strings.HasPrefix(line, ResultMarker):
			result = json.RawMessage(line[len(ResultMarker):])
		}
	}
	if exitCode != 0 {
		return nil, &ScriptError{Step: step, ExitCode: exitCode, Stderr: Stderr(stderr)}
	}
	if result == nil {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(result) {
		return nil, fmt.Errorf("%s: result is not JSON: %.200s", step, result)
	}
	return result, nil
}

var clixmlError = regexp.MustCompile(`(?s)<S S="Error">(.*?)</S>`)
var clixmlEscape = regexp.MustCompile(`_x([0-9A-Fa-f]{4})_`)

// Stderr returns PowerShell's standard error as text. Over SSH it arrives
// as CLIXML ("#< CLIXML" and <S S="Error"> elements); those are decoded.
func Stderr(b []byte) string {
	s := string(b)
	if !strings.HasPrefix(strings.TrimSpace(s), "#< CLIXML") {
		return strings.TrimSpace(s)
	}
	var out strings.Builder
	for _, m := range clixmlError.FindAllStringSubmatch(s, -1) {
		t := clixmlEscape.ReplaceAllStringFunc(m[1], func(x string) string {
			var r rune
			fmt.Sscanf(x[2:6], "%04x", &r)
			return string(r)
		})
		out.WriteString(html.UnescapeString(t))
	}
	return strings.TrimSpace(out.String())
}
