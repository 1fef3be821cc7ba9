package slave

import (
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
)

// The OpenAPI document (services/api/openapi.json) documents the slave's API
// as the operations tagged "slave". This test fails when a slave route is
// added, removed or renamed without the document following.

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

func TestOpenAPISlaveRoutes(t *testing.T) {
	s, err := New(Defaults())
	if err != nil {
		t.Fatal(err)
	}
	e, ok := s.Handler().(*echo.Echo)
	if !ok {
		t.Fatalf("Handler() is a %T, not *echo.Echo: update this test", s.Handler())
	}
	routes := map[string]bool{}
	for _, r := range e.Router().Routes() {
		t.Logf("route: %-8s %s", r.Method, r.Path)
		switch {
		case r.Method == echo.RouteNotFound:
			continue
		case strings.HasPrefix(r.Method, "echo_route_"):
			t.Errorf("route %s %s: register each method explicitly so the OpenAPI document can list it", r.Method, r.Path)
			continue
		case strings.Contains(r.Path, "*"):
			t.Errorf("route %s %s: wildcard routes cannot be matched against the OpenAPI document; extend this test", r.Method, r.Path)
			continue
		}
		routes[strings.ToLower(r.Method)+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(routes) == 0 {
		t.Fatal("the slave registers no routes")
	}

	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("services/api/openapi.json is not valid JSON: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf(`"openapi" is %q, want "3.1.0"`, doc.OpenAPI)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths {
		for _, m := range []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"} {
			b, ok := item[m]
			if !ok {
				continue
			}
			var op struct {
				Tags []string `json:"tags"`
			}
			if err := json.Unmarshal(b, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			if !slices.Contains(op.Tags, "slave") {
				continue
			}
			documented[m+" "+path] = true
			var servers []struct {
				URL string `json:"url"`
			}
			_ = json.Unmarshal(item["servers"], &servers)
			slaveServer := false
			for _, sv := range servers {
				slaveServer = slaveServer || strings.HasSuffix(sv.URL, ":6001")
			}
			if !slaveServer {
				t.Errorf("%s %s is a slave operation: its path item needs a servers override naming the slave (port 6001)", m, path)
			}
		}
	}
	keys := func(m map[string]bool) []string {
		out := make([]string, 0, len(m))
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	for _, k := range keys(routes) {
		if !documented[k] {
			t.Errorf("slave route %q is not documented in services/api/openapi.json (as an operation tagged \"slave\")", k)
		}
	}
	for _, k := range keys(documented) {
		if !routes[k] {
			t.Errorf("services/api/openapi.json documents %q with tag \"slave\", but the slave registers no such route", k)
		}
	}
}
