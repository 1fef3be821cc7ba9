package ps

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/calclab/calclab/infra/driver/hyperv/ps/pstest"
	"github.com/calclab/calclab/internal/sshdtest"
)

func TestEncodeCommandRoundTrip(t *testing.T) {
	for _, s := range []string{"", "Get-VM", "$x = 'é😀'\r\n", strings.Repeat("ab", 5000)} {
		enc := EncodeCommand(s)
		got, err := DecodeCommand(enc)
		if err != nil || got != s {
			t.Fatalf("round trip of %q: %q, %v", s, got, err)
		}
	}
	// PowerShell's documented example: 'dir "c:\program files" ' encodes as
	// ZABpAHIAIAAiAGMAOgBcAHAAcgBvAGcAcgBhAG0AIABmAGkAbABlAHMAIgAgAA==
	if got := EncodeCommand(`dir "c:\program files" `); got != "ZABpAHIAIAAiAGMAOgBcAHAAcgBvAGcAcgBhAG0AIABmAGkAbABlAHMAIgAgAA==" {
		t.Fatalf("EncodeCommand = %s", got)
	}
}

func TestArgvFallsBackToStdin(t *testing.T) {
	tests := []struct {
		name   string
		script string
		max    int
		stdin  bool
	}{
		{"fits", "Get-VM", CmdExeMax, false},
		{"too long for cmd.exe", strings.Repeat("#", 4000), CmdExeMax, true},
		{"fits CreateProcess", strings.Repeat("#", 4000), CreateProcessMax, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			argv, stdin := Argv("", tt.script, tt.max)
			if line := strings.Join(argv, " "); len(line) > tt.max {
				t.Fatalf("command line of %d > %d", len(line), tt.max)
			}
			if argv[0] != "powershell" || argv[3] != "-EncodedCommand" {
				t.Fatalf("argv %v", argv[:4])
			}
			if (stdin != nil) != tt.stdin {
				t.Fatalf("stdin used = %v, want %v", stdin != nil, tt.stdin)
			}
			want := tt.script
			if tt.stdin {
				want = Bootstrap
				got, err := DecodeCommand(strings.TrimSpace(string(stdin)))
				if err != nil || got != tt.script {
					t.Fatalf("stdin carries %q, %v", got, err)
				}
			}
			if got, _ := DecodeCommand(argv[4]); got != want {
				t.Fatalf("-EncodedCommand carries %q", got)
			}
		})
	}
}

func TestParseOutput(t *testing.T) {
	tests := []struct {
		name    string
		stdout  string
		stderr  string
		code    int
		want    string
		wantErr string
	}{
		{"result", "noise\r\nCALCLAB-RESULT {\"a\":1}\r\n", "", 0, `{"a":1}`, ""},
		{"no result", "", "", 0, "null", ""},
		{"error line", "CALCLAB-ERROR {\"id\":\"SwitchNameTaken,Stop-Step\",\"message\":\"taken\"}\n", "", 1, "", "taken [SwitchNameTaken,Stop-Step]"},
		{"died before the trap", "", "#< CLIXML\r\n<Objs Version=\"1.1.0.1\"><S S=\"Error\">The term 'New-VM' is not recognized_x000D__x000A_</S></Objs>", 1, "", "The term 'New-VM' is not recognized"},
		{"exit code only", "", "", 5, "", "exit code 5"},
		{"bad json", "CALCLAB-RESULT {nope\n", "", 0, "", "not JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOutput("02-switch", []byte(tt.stdout), []byte(tt.stderr), tt.code)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %s, %v", got, err)
			}
		})
	}
	_, err := ParseOutput("s", []byte("CALCLAB-ERROR {\"id\":\"NotElevated,Stop-Step\"}"), nil, 1)
	var se *ScriptError
	if !errors.As(err, &se) || se.ErrorID() != "NotElevated" {
		t.Fatalf("ErrorID of %v", err)
	}
}

func sampleScript(body string) *Script {
	return &Script{Step: "02-switch", Kind: "switch", Params: []Param{
		{"SwitchName", "calclab-internal"},
		{"Evil", "x'); Remove-VM * #\u2019 $(whoami) `n"},
		{"Count", 2},
		{"On", true},
		{"Names", []string{"a", "b'c"}},
		{"Data", JSON{map[string]any{"items": []int{1, 2}}}},
	}, Body: body}
}

type standInResult struct {
	Via    string `json:"via"`
	Script string `json:"script"`
}

func checkEcho(t *testing.T, raw json.RawMessage, s *Script, via string) {
	t.Helper()
	var r standInResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	got, err := base64.StdEncoding.DecodeString(r.Script)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := s.Render()
	if string(got) != want {
		t.Fatalf("far side decoded\n%s\nwant\n%s", got, want)
	}
	if r.Via != via {
		t.Fatalf("script came by %s, want %s", r.Via, via)
	}
}

func standIn(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("testdata", "powershell"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLocalTransportStandIn runs the local transport against the stand-in
// powershell (a real process with real arguments and stdin).
func TestLocalTransportStandIn(t *testing.T) {
	sh := &Shell{T: Local{}, Program: standIn(t)}
	s := sampleScript("Send-Result @{ ok = $true }\n")
	raw, err := sh.Run(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	checkEcho(t, raw, s, "argument")
}

// TestSSHTransportRealSSHD runs scripts through a real OpenSSH server: the
// far side gets `powershell -NoProfile -NonInteractive -EncodedCommand ...`
// as one command line, runs the stand-in powershell found on its PATH, and
// the result comes back over the SSH channel.
func TestSSHTransportRealSSHD(t *testing.T) {
	sshdtest.Require(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(standIn(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "powershell"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, filepath.Join(dir, "sshd"), strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))), 0,
		"SetEnv PATH="+bin+":/usr/bin:/bin")
	tr := &SSH{Addr: srv.Addr, Config: &ssh.ClientConfig{
		User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey), Timeout: 10 * time.Second,
	}}
	t.Cleanup(func() { tr.Close() })
	sh := &Shell{T: tr}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("script on the command line", func(t *testing.T) {
		s := sampleScript("Send-Result @{ ok = $true }\n")
		raw, err := sh.Run(ctx, s)
		if err != nil {
			t.Fatalf("%v\nsshd log:\n%s", err, srv.Log())
		}
		checkEcho(t, raw, s, "argument")
	})
	t.Run("long script through the bootstrap on stdin", func(t *testing.T) {
		s := sampleScript(strings.Repeat("# padding past the 8191 characters cmd.exe takes\n", 200) + "Send-Result @{ ok = $true }\n")
		raw, err := sh.Run(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		checkEcho(t, raw, s, "stdin")
	})
	t.Run("error line and exit code", func(t *testing.T) {
		_, err := sh.Run(ctx, sampleScript("# stand-in: fail\n"))
		var se *ScriptError
		if !errors.As(err, &se) || se.ErrorID() != "NotElevated" || se.ExitCode != 1 {
			t.Fatalf("err = %#v", err)
		}
	})
	t.Run("argument the shell would change", func(t *testing.T) {
		_, _, _, err := tr.Exec(ctx, []string{"powershell", "a&b"}, nil)
		if err == nil || !strings.Contains(err.Error(), "would be changed") {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestBootstrapParses: the stdin bootstrap is PowerShell too.
func TestBootstrapParses(t *testing.T) {
	res := pstest.Parse(t, []string{Bootstrap, Prelude})
	for i, r := range res {
		if len(r.Errors) > 0 {
			t.Fatalf("source %d: %v", i, r.Errors)
		}
	}
}

func FuzzParseOutput(f *testing.F) {
	f.Add([]byte("CALCLAB-RESULT {\"a\":1}\n"), []byte(""), 0)
	f.Add([]byte("CALCLAB-ERROR {\"id\":\"x\"}\n"), []byte("#< CLIXML\r\n<S S=\"Error\">a_x000A_</S>"), 1)
	f.Fuzz(func(t *testing.T, stdout, stderr []byte, code int) {
		raw, err := ParseOutput("s", stdout, stderr, code)
		if err == nil && !json.Valid(raw) {
			t.Fatalf("ParseOutput returned invalid JSON %q", raw)
		}
	})
}
