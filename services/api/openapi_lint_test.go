package api

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenAPIRedoclyLint runs Redocly's own linter (recommended rules) over
// the document, as an API user's tooling would: it must report no error.
// redocly comes from the repository's package.json (make deps); without it
// the test is skipped, or fails under CI.
func TestOpenAPIRedoclyLint(t *testing.T) {
	bin, _ := filepath.Abs("../../node_modules/.bin/redocly")
	if _, err := os.Stat(bin); err != nil {
		msg := "redocly is not installed: run make deps (npm ci)"
		if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(bin, "lint", "--format=summary", "openapi.json")
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Contains(string(out), "error ") {
		t.Fatalf("redocly lint: %v\n%s", err, out)
	}
}

// TestOpenAPIClientFacts checks what generated clients and API viewers rely
// on: a relative server for the master (so a client targets wherever the
// document was served, not :5000), a declared security requirement on every
// operation (bearer token for slave management, none elsewhere), and a
// licence and contact.
func TestOpenAPIClientFacts(t *testing.T) {
	var doc struct {
		Info struct {
			License map[string]string `json:"license"`
			Contact map[string]string `json:"contact"`
		} `json:"info"`
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Info.License["name"] == "" || doc.Info.Contact["url"] == "" {
		t.Errorf("info needs a license and a contact: %+v %+v", doc.Info.License, doc.Info.Contact)
	}
	if len(doc.Servers) != 1 || strings.Contains(doc.Servers[0].URL, "://") {
		t.Errorf("servers = %+v, want one relative URL", doc.Servers)
	}
	protected := map[string]bool{"post /register-slave": true, "delete /slaves/{id}": true, "post /slaves/{id}/heartbeat": true}
	for path, item := range doc.Paths {
		for method, raw := range item {
			switch method {
			case "get", "post", "put", "delete", "patch":
			default:
				continue
			}
			var op struct {
				Security *[]map[string][]string `json:"security"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			key := method + " " + path
			switch {
			case op.Security == nil:
				t.Errorf("%s declares no security", key)
			case protected[key] && (len(*op.Security) != 1 || (*op.Security)[0]["bearerAuth"] == nil):
				t.Errorf("%s needs the bearer token: security %v", key, *op.Security)
			case !protected[key] && len(*op.Security) != 0:
				t.Errorf("%s is open but declares security %v", key, *op.Security)
			}
		}
	}
}
