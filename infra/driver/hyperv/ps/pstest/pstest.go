// Package pstest parses PowerShell in tests with the real tree-sitter
// PowerShell grammar, through scripts/psparse.mjs and the repository's
// node_modules (installed by `npm ci`, which make test runs).
package pstest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Result is what the parser saw in one source.
type Result struct {
	Errors  []string `json:"errors"`
	Strings []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"strings"`
	Statements int `json:"statements"`
}

// root is the directory holding go.mod.
func root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("pstest: go.mod not found above the test's directory")
		}
		dir = parent
	}
}

// Require skips the test (fails it under CI) when node or the tree-sitter
// packages are not installed, and returns the repository root.
func Require(t testing.TB) string {
	t.Helper()
	r := root(t)
	missing := ""
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not installed (apt-get install nodejs npm)"
	} else if _, err := os.Stat(filepath.Join(r, "node_modules", "tree-sitter-powershell", "package.json")); err != nil {
		missing = "node_modules/tree-sitter-powershell is absent: run `npm ci` at the repository root (make test does)"
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("PowerShell syntax check cannot run: %s", missing)
		}
		t.Skipf("PowerShell syntax check skipped: %s", missing)
	}
	return r
}

// Parse parses every source with tree-sitter-powershell in one node run.
func Parse(t testing.TB, sources []string) []Result {
	t.Helper()
	r := Require(t)
	in, err := json.Marshal(sources)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(r, "scripts", "psparse.mjs"), "--json")
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("psparse: %v\n%s", err, stderr.String())
	}
	var res []Result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("psparse output: %v\n%s", err, out)
	}
	if len(res) != len(sources) {
		t.Fatalf("psparse: %d results for %d sources", len(res), len(sources))
	}
	return res
}

// ParseFiles runs psparse over files and fails the test on any syntax
// error, printing the parser's report.
func ParseFiles(t testing.TB, files []string) {
	t.Helper()
	r := Require(t)
	cmd := exec.Command("node", append([]string{filepath.Join(r, "scripts", "psparse.mjs")}, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("generated PowerShell does not parse: %v\n%s", err, out)
	}
}
