package lab

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/calclab/calclab/infra/spec"
)

// TestLabNeverRunsOpen: an empty token in lab.yaml gets a random one, kept
// in the state dir (0600) and the same on every later command; a token set
// in lab.yaml is used as is.
func TestLabNeverRunsOpen(t *testing.T) {
	dir := t.TempDir()
	a := &spec.Lab{}
	path, err := EnsureToken(a, dir)
	if err != nil || len(a.Services.Token) != 64 || path != filepath.Join(dir, TokenFile) {
		t.Fatalf("generated token %q at %q: %v", a.Services.Token, path, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v, want mode 0600", fi, err)
	}
	b := &spec.Lab{}
	if _, err := EnsureToken(b, dir); err != nil || b.Services.Token != a.Services.Token {
		t.Fatalf("second command got token %q, want the kept %q (%v)", b.Services.Token, a.Services.Token, err)
	}
	other := &spec.Lab{}
	if _, err := EnsureToken(other, t.TempDir()); err != nil || other.Services.Token == a.Services.Token {
		t.Fatal("two labs share a generated token")
	}
	set := &spec.Lab{}
	set.Services.Token = "from-lab-yaml"
	if path, err := EnsureToken(set, dir); err != nil || path != "" || set.Services.Token != "from-lab-yaml" {
		t.Fatalf("lab.yaml token replaced: %q %q %v", set.Services.Token, path, err)
	}
}
