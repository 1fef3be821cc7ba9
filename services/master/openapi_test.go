package master

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
)

// The OpenAPI document (services/api/openapi.json) must describe exactly the
// routes the master registers, and stay a well-formed OpenAPI 3.1 document.
// These tests fail when a route is added, removed or renamed without the
// document following, or when a wire type gains or loses a field.

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Tags        []string                   `json:"tags"`
	Parameters  []json.RawMessage          `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// openAPIOp is one operation of the document with where it lives.
type openAPIOp struct {
	Path, Method string // Method is lower-case, as in the document
	Op           openAPIOperation
	Item         map[string]json.RawMessage // the path item
}

func loadOpenAPI(t *testing.T) (map[string]any, []openAPIOp) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("services/api/openapi.json is not valid JSON: %v", err)
	}
	var raw struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &raw); err != nil {
		t.Fatalf("paths: %v", err)
	}
	var ops []openAPIOp
	for path, item := range raw.Paths {
		for _, m := range openAPIMethods {
			b, ok := item[m]
			if !ok {
				continue
			}
			var op openAPIOperation
			if err := json.Unmarshal(b, &op); err != nil {
				t.Fatalf("%s %s: %v", m, path, err)
			}
			ops = append(ops, openAPIOp{Path: path, Method: m, Op: op, Item: item})
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		return ops[i].Path+" "+ops[i].Method < ops[j].Path+" "+ops[j].Method
	})
	return doc, ops
}

var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// routeKeys turns echo routes into "method /path/{param}" keys (method in
// lower case, as in OpenAPI). Echo's own special routes are skipped.
func routeKeys(t *testing.T, routes []echo.RouteInfo) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	for _, r := range routes {
		t.Logf("route: %-8s %s", r.Method, r.Path)
		switch {
		case r.Method == echo.RouteNotFound:
			continue
		case r.Method == echo.RouteAny || strings.HasPrefix(r.Method, "echo_route_"):
			t.Errorf("route %s %s: register each method explicitly so the OpenAPI document can list it", r.Method, r.Path)
			continue
		case strings.Contains(r.Path, "*"):
			t.Errorf("route %s %s: wildcard routes cannot be matched against the OpenAPI document; extend this test", r.Method, r.Path)
			continue
		}
		keys[strings.ToLower(r.Method)+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	if len(keys) == 0 {
		t.Fatal("no routes registered")
	}
	return keys
}

// docKeys returns the "method /path" keys of the operations carrying tag.
func docKeys(ops []openAPIOp, tag string) map[string]bool {
	keys := map[string]bool{}
	for _, o := range ops {
		if slices.Contains(o.Op.Tags, tag) {
			keys[o.Method+" "+o.Path] = true
		}
	}
	return keys
}

func compareRoutes(t *testing.T, service string, routes, documented map[string]bool) {
	t.Helper()
	for _, k := range sortedKeys(routes) {
		if !documented[k] {
			t.Errorf("%s route %q is not documented in services/api/openapi.json (as an operation tagged %q)", service, k, service)
		}
	}
	for _, k := range sortedKeys(documented) {
		if !routes[k] {
			t.Errorf("services/api/openapi.json documents %q with tag %q, but the %s registers no such route", k, service, service)
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func newOpenAPITestServer(t *testing.T) *Server {
	t.Helper()
	cfg := Defaults()
	cfg.DataDir = t.TempDir()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestOpenAPIMasterRoutes(t *testing.T) {
	s := newOpenAPITestServer(t)
	_, ops := loadOpenAPI(t)
	compareRoutes(t, "master", routeKeys(t, s.Routes()), docKeys(ops, "master"))
}

func TestOpenAPIServed(t *testing.T) {
	s := newOpenAPITestServer(t)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, api.OpenAPI) {
		t.Fatal("GET /openapi.json does not serve api.OpenAPI")
	}
}

func TestOpenAPIDocument(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	if v := doc["openapi"]; v != "3.1.0" {
		t.Errorf(`"openapi" is %v, want "3.1.0"`, v)
	}
	info, _ := doc["info"].(map[string]any)
	if info["title"] == nil || info["version"] != api.Version {
		t.Errorf("info must have a title and version %q, got %v / %v", api.Version, info["title"], info["version"])
	}
	if len(ops) == 0 {
		t.Fatal("no operations in paths")
	}

	// Every $ref points at something that exists.
	walkRefs(doc, "#", func(where, ref string) {
		if !strings.HasPrefix(ref, "#/components/") {
			t.Errorf("%s: $ref %q does not point into #/components", where, ref)
			return
		}
		if _, ok := resolvePointer(doc, ref); !ok {
			t.Errorf("%s: $ref %q does not resolve", where, ref)
		}
	})

	// Operations that need not document a client error: they take no input.
	no4xx := map[string]bool{"get /health": true, "get /metrics": true, "get /openapi.json": true, "get /slaves": true}
	ids := map[string]string{}
	for _, o := range ops {
		key := o.Method + " " + o.Path
		if o.Op.OperationID == "" {
			t.Errorf("%s: no operationId", key)
		} else if prev, dup := ids[o.Op.OperationID]; dup {
			t.Errorf("%s: operationId %q is also used by %s", key, o.Op.OperationID, prev)
		}
		ids[o.Op.OperationID] = key
		if !slices.Contains(o.Op.Tags, "master") && !slices.Contains(o.Op.Tags, "slave") {
			t.Errorf("%s: tagged %v, want \"master\" and/or \"slave\"", key, o.Op.Tags)
		}
		if slices.Contains(o.Op.Tags, "slave") {
			var servers []any
			_ = json.Unmarshal(o.Item["servers"], &servers)
			if len(servers) == 0 {
				t.Errorf("%s is a slave operation: its path item needs a servers override", key)
			}
		}
		if len(o.Op.Responses) == 0 {
			t.Errorf("%s: no responses", key)
		}
		has4xx, has2xx := false, false
		for code := range o.Op.Responses {
			has4xx = has4xx || (len(code) == 3 && code[0] == '4')
			// 101 is the success of an upgrade (GET /compute/stream).
			has2xx = has2xx || (len(code) == 3 && code[0] == '2') || code == "101"
		}
		if !has2xx {
			t.Errorf("%s: no 2xx response", key)
		}
		if !has4xx && !no4xx[key] {
			t.Errorf("%s: documents no 4xx response", key)
		}
		// Every {param} of the path is declared as a path parameter.
		declared := map[string]bool{}
		var itemParams []json.RawMessage
		_ = json.Unmarshal(o.Item["parameters"], &itemParams)
		for _, p := range append(itemParams, o.Op.Parameters...) {
			var param struct {
				Ref  string `json:"$ref"`
				Name string `json:"name"`
				In   string `json:"in"`
			}
			_ = json.Unmarshal(p, &param)
			if param.Ref != "" {
				if v, ok := resolvePointer(doc, param.Ref); ok {
					m, _ := v.(map[string]any)
					param.Name, _ = m["name"].(string)
					param.In, _ = m["in"].(string)
				}
			}
			if param.In == "path" {
				declared[param.Name] = true
			}
		}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(o.Path, -1) {
			if !declared[m[1]] {
				t.Errorf("%s: path parameter %q is not declared", key, m[1])
			}
			delete(declared, m[1])
		}
		for name := range declared {
			t.Errorf("%s: declares path parameter %q that the path does not have", key, name)
		}
	}
}

// TestOpenAPISchemas checks that every wire type has a schema whose
// properties are exactly the type's JSON fields, that only fields always
// present are marked required, and that the status enums match the code.
func TestOpenAPISchemas(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	schemas, _ := resolvePointer(doc, "#/components/schemas")
	all, _ := schemas.(map[string]any)
	types := map[string]any{
		"Error": api.Error{}, "Operation": api.Operation{}, "SubmitRequest": api.SubmitRequest{},
		"Task": api.Task{}, "TaskList": api.TaskList{}, "BatchRequest": api.BatchRequest{},
		"BatchItem": api.BatchItem{}, "BatchResponse": api.BatchResponse{},
		"RegisterRequest": api.RegisterRequest{}, "RegisterResponse": api.RegisterResponse{},
		"Heartbeat": api.Heartbeat{}, "SlaveInfo": api.SlaveInfo{},
		"ComputeRequest": api.ComputeRequest{}, "ComputeResponse": api.ComputeResponse{},
		"ComputeBatchRequest": api.ComputeBatchRequest{}, "ComputeBatchResponse": api.ComputeBatchResponse{},
		"Health": api.Health{}, "StreamStart": api.StreamStart{}, "StreamTile": api.StreamTile{},
		"StreamDone": api.StreamDone{}, "StreamError": api.StreamError{}, "RenderStats": api.RenderStats{},
	}
	for name, v := range types {
		s, ok := all[name].(map[string]any)
		if !ok {
			t.Errorf("components/schemas/%s is missing", name)
			continue
		}
		if d, _ := s["description"].(string); d == "" {
			t.Errorf("components/schemas/%s has no description", name)
		}
		props, _ := s["properties"].(map[string]any)
		fields := map[string]bool{} // JSON name -> omitempty
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag := rt.Field(i).Tag.Get("json")
			fname, opts, _ := strings.Cut(tag, ",")
			if fname == "-" || fname == "" {
				continue
			}
			fields[fname] = strings.Contains(opts, "omitempty")
			if _, ok := props[fname]; !ok {
				t.Errorf("components/schemas/%s does not document field %q of api.%s", name, fname, rt.Name())
			}
		}
		for p := range props {
			if _, ok := fields[p]; !ok {
				t.Errorf("components/schemas/%s documents %q, which api.%s does not have", name, p, rt.Name())
			}
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			omit, ok := fields[r.(string)]
			if !ok || omit {
				t.Errorf("components/schemas/%s requires %q, which api.%s may omit", name, r, rt.Name())
			}
		}
	}
	enum := func(schema string) []string {
		s, _ := all[schema].(map[string]any)
		var out []string
		vals, _ := s["enum"].([]any)
		for _, v := range vals {
			str, _ := v.(string)
			out = append(out, str)
		}
		sort.Strings(out)
		return out
	}
	wantTask := []string{api.StatusQueued, api.StatusAssigned, api.StatusCompleted, api.StatusFailed}
	sort.Strings(wantTask)
	if got := enum("TaskStatus"); !slices.Equal(got, wantTask) {
		t.Errorf("TaskStatus enum is %v, want %v", got, wantTask)
	}
	wantReason := []string{api.ReasonEvaluation, api.ReasonDeadline, api.ReasonUnavailable, api.ReasonInvalid}
	sort.Strings(wantReason)
	if got := enum("TaskFailureReason"); !slices.Equal(got, wantReason) {
		t.Errorf("TaskFailureReason enum is %v, want %v", got, wantReason)
	}
	wantSlave := []string{api.SlaveFree, api.SlaveBusy, api.SlaveDown, api.SlaveDraining}
	sort.Strings(wantSlave)
	if got := enum("SlaveStatus"); !slices.Equal(got, wantSlave) {
		t.Errorf("SlaveStatus enum is %v, want %v", got, wantSlave)
	}
	for _, h := range []string{api.HeaderRequestID, api.HeaderHashKey} {
		if _, ok := resolvePointer(doc, "#/components/parameters/"+h); !ok {
			t.Errorf("components/parameters/%s is missing", h)
		}
	}
	if _, ok := resolvePointer(doc, "#/components/securitySchemes/bearerAuth"); !ok {
		t.Error("components/securitySchemes/bearerAuth is missing")
	}
}

// walkRefs calls fn for every "$ref" in v.
func walkRefs(v any, where string, fn func(where, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if s, ok := x.(string); ok && k == "$ref" {
				fn(where, s)
				continue
			}
			walkRefs(x, where+"/"+k, fn)
		}
	case []any:
		for _, x := range v {
			walkRefs(x, where+"/[]", fn)
		}
	}
}

// resolvePointer resolves a local JSON pointer such as "#/components/schemas/Task".
func resolvePointer(doc any, ref string) (any, bool) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(p, "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}
