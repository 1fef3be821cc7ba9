package terraform

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeTerraform writes a shell script that answers like the terraform CLI
// for `version -json` and fails the named command with Terraform's boxed
// diagnostic on stderr. It is a FAKE of terraform: only the engine's
// handling of errors is tested with it (the real CLI runs in
// TestEngineLocalCycle).
func fakeTerraform(t *testing.T, version, failCmd, diag string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "diag.txt"), []byte(diag+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "terraform")
	script := "#!/bin/sh\ncase \"$1\" in\n" +
		"version) echo '{\"terraform_version\":\"" + version + "\",\"platform\":\"linux_amd64\",\"provider_selections\":{},\"terraform_outdated\":false}'; exit 0 ;;\n" +
		failCmd + ") cat '" + filepath.Join(dir, "diag.txt") + "' >&2; exit 1 ;;\n" +
		"*) exit 0 ;;\nesac\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestFakeTerraformErrorsReadable: what Terraform says on failure reaches
// the user in one readable error (no box drawing, the command and the
// working directory named), and an old terraform is refused by version.
func TestFakeTerraformErrorsReadable(t *testing.T) {
	const boxed = "╷\n│ Error: Failed to query available provider packages\n│ \n│ Could not retrieve the list of available versions for provider\n│ calclab/calclab: provider registry.terraform.io/calclab/calclab was not\n│ found in any of the search locations\n╵"
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, ProviderBinary), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	up := func(e *Engine) error { _, err := e.Up(context.Background()); return err }
	for _, tc := range []struct {
		name, failCmd string
		verb          func(*Engine) error
		want          []string
	}{
		{"init fails", "init", up, []string{"terraform init failed (working directory ", "Error: Failed to query available provider packages", "  found in any of the search locations"}},
		{"apply fails", "apply", up, []string{"terraform apply failed", "Error: Failed to query"}},
		{"plan fails", "plan", func(e *Engine) error { _, err := e.Plan(context.Background()); return err }, []string{"terraform plan failed", "Could not retrieve the list"}},
		{"destroy fails", "destroy", func(e *Engine) error {
			if err := os.MkdirAll(e.Dir(), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(e.Dir(), "terraform.tfstate"), []byte("{}"), 0o644); err != nil {
				return err
			}
			return e.Down(context.Background())
		}, []string{"terraform destroy failed", "Error: Failed to query"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var out bytes.Buffer
			e := &Engine{Spec: localLab(t, dir, []int{5000, 6001, 6002}, 2), StateDir: filepath.Join(dir, ".lab"), BinDir: bin,
				Terraform: fakeTerraform(t, "1.5.7", tc.failCmd, boxed), Out: &out}
			err := tc.verb(e)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, box := range []string{"╷", "╵", "│"} {
				if strings.Contains(err.Error(), box) {
					t.Errorf("error keeps Terraform's box drawing %q:\n%v", box, err)
				}
			}
			if tc.failCmd == "destroy" {
				if _, err := os.Stat(filepath.Join(e.Dir(), "terraform.tfstate")); err != nil {
					t.Errorf("a failed destroy removed the state: %v", err)
				}
			}
		})
	}

	// FindTerraform refuses an old CLI and says why.
	t.Setenv("CALCLAB_TERRAFORM", fakeTerraform(t, "1.4.6", "never", ""))
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CALCLAB_TOOLS_BIN", t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := FindTerraform(ctx)
	if err == nil || !strings.Contains(err.Error(), "version 1.4.6 is older than 1.5.0") || !strings.Contains(err.Error(), "run make tools") {
		t.Fatalf("FindTerraform with only terraform 1.4.6: %v", err)
	}
}
