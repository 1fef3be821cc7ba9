// Package e2eengines runs each IaC engine's cycle once on real QEMU VMs:
// lab up --engine E --provider qemu (two VMs: the master and one slave),
// a task answered by the slave VM, lab plan says no changes, lab status,
// lab down leaves no VM, no process and no state. Run by make e2e-engines
// (in .ci/run), which builds the image, the binaries and the CLIs first.
package e2eengines

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// twoNodes is the repository's lab.yaml cut to the master and slave-1:
// the same network, image and ports, half the boot time.
func twoNodes(t *testing.T, root string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "lab.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i := strings.Index(text, "  - name: slave-2")
	if i < 0 {
		t.Fatalf("lab.yaml has no slave-2 block to cut")
	}
	file := filepath.Join(t.TempDir(), "lab.yaml")
	if err := os.WriteFile(file, []byte(text[:i]), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestEnginesOnQEMU(t *testing.T) {
	if os.Getenv("CALCLAB_E2E_ENGINES") == "" {
		t.Skip("set CALCLAB_E2E_ENGINES=1 (make e2e-engines does, after building the image and the CLIs)")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	labBin := filepath.Join(root, "bin", "lab")
	file := twoNodes(t, root)
	engines := strings.Fields(os.Getenv("CALCLAB_E2E_ENGINES_LIST"))
	if len(engines) == 0 {
		engines = []string{"terraform", "pulumi"}
	}
	for _, eng := range engines {
		t.Run(eng, func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "lab")
			lab := func(timeout time.Duration, args ...string) (string, error) {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				cmd := exec.CommandContext(ctx, labBin, append([]string{"--file", file, "--state-dir", state}, args...)...)
				cmd.Dir = root
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				start := time.Now()
				err := cmd.Run()
				fmt.Printf("  $ lab %s  (%s)\n", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
				return out.String(), err
			}
			t.Cleanup(func() {
				if _, err := os.Stat(state); err == nil {
					out, err := lab(5*time.Minute, "down")
					t.Logf("cleanup: lab down: %v\n%s", err, out)
				}
			})
			out, err := lab(15*time.Minute, "--engine", eng, "--provider", "qemu", "up")
			if err != nil {
				t.Fatalf("lab up --engine %s --provider qemu: %v\n%s", eng, err, out)
			}
			out, err = lab(time.Minute, "status", "--json")
			var st struct {
				Engine    string `json:"engine"`
				MasterURL string `json:"master_url"`
				Nodes     []struct {
					Name, Health string
				} `json:"nodes"`
			}
			if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Engine != eng || len(st.Nodes) != 2 {
				t.Fatalf("lab status --json: %v\n%s", err, out)
			}
			token, _ := os.ReadFile(filepath.Join(state, "token"))
			req, _ := http.NewRequest(http.MethodPost, st.MasterURL+"/submit-task", strings.NewReader(`{"payload": "6 * 7"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			res, err := (&http.Client{Timeout: time.Minute}).Do(req)
			if err != nil {
				t.Fatalf("submit-task to %s: %v", st.MasterURL, err)
			}
			var task struct {
				Status string  `json:"status"`
				Result float64 `json:"result"`
				Slave  string  `json:"slave"`
			}
			_ = json.NewDecoder(res.Body).Decode(&task)
			res.Body.Close()
			if task.Status != "completed" || task.Result != 42 || task.Slave != "slave-1" {
				t.Fatalf("6 * 7 on the VMs: %d %+v", res.StatusCode, task)
			}
			fmt.Printf("  6 * 7 = %v by %s (VM)\n", task.Result, task.Slave)
			out, err = lab(5*time.Minute, "plan")
			if err != nil || !strings.Contains(out, "no changes") {
				t.Fatalf("lab plan on the converged lab: %v\n%s", err, out)
			}
			out, err = lab(5*time.Minute, "down")
			if err != nil {
				t.Fatalf("lab down: %v\n%s", err, out)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				entries, _ := os.ReadDir(state)
				t.Fatalf("lab down left %v", entries)
			}
			if ps, err := exec.Command("pgrep", "-a", "-f", state).Output(); err == nil && len(ps) > 0 {
				t.Fatalf("processes of the lab still run:\n%s", ps)
			}
		})
	}
}
