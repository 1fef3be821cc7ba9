package terraform

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/calclab/calclab/infra/spec"
)

// module is what the checks need from a directory of .tf files.
type module struct {
	vars      map[string]bool // declared variable -> has a default
	outputs   map[string]bool
	locals    map[string]bool
	resources map[string]bool // type.name
	refs      []ref
}

type ref struct {
	root, attr string
	at         hcl.Range
}

func parseModule(t *testing.T, dir string) module {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .tf files in %s (%v)", dir, err)
	}
	m := module{vars: map[string]bool{}, outputs: map[string]bool{}, locals: map[string]bool{}, resources: map[string]bool{}}
	p := hclparse.NewParser()
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		body := file.Body.(*hclsyntax.Body)
		for _, b := range body.Blocks {
			switch b.Type {
			case "variable":
				_, hasDefault := b.Body.Attributes["default"]
				m.vars[b.Labels[0]] = hasDefault
			case "output":
				m.outputs[b.Labels[0]] = true
			case "locals":
				for name := range b.Body.Attributes {
					m.locals[name] = true
				}
			case "resource":
				m.resources[b.Labels[0]+"."+b.Labels[1]] = true
			}
		}
		seen := map[string]bool{}
		diags = hclsyntax.VisitAll(body, func(n hclsyntax.Node) hcl.Diagnostics {
			e, ok := n.(hclsyntax.Expression)
			if !ok {
				return nil
			}
			for _, tr := range e.Variables() {
				if seen[tr.SourceRange().String()] {
					continue // an enclosing expression reported it
				}
				seen[tr.SourceRange().String()] = true
				r := ref{root: tr.RootName(), at: tr.SourceRange()}
				if len(tr) > 1 {
					if a, ok := tr[1].(hcl.TraverseAttr); ok {
						r.attr = a.Name
					}
				}
				m.refs = append(m.refs, r)
			}
			return nil
		})
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
	}
	return m
}

// builtinRoots are names every expression may use that are not declared in
// the module (for_each's each, count's count, path.module, ...).
var builtinRoots = map[string]bool{"each": true, "count": true, "path": true, "terraform": true, "self": true}

// TestHCLModules parses both configurations with hashicorp/hcl: every
// variable referenced is declared and every declared one is used, every
// local and resource referenced exists, and the outputs are exactly those
// lab status reads.
func TestHCLModules(t *testing.T) {
	for _, dir := range []string{"calclab", "hyperv-taliesins"} {
		t.Run(dir, func(t *testing.T) {
			m := parseModule(t, dir)
			used := map[string]bool{}
			for _, r := range m.refs {
				switch {
				case r.root == "var":
					if _, ok := m.vars[r.attr]; !ok {
						t.Errorf("%s: var.%s is not declared", r.at, r.attr)
					}
					used[r.attr] = true
				case r.root == "local":
					if !m.locals[r.attr] {
						t.Errorf("%s: local.%s is not declared", r.at, r.attr)
					}
				case r.root == "data" || builtinRoots[r.root]:
				case r.attr != "":
					// for-expression variables (n, name) have no attribute
					// traversal into a resource type; resources do.
					if strings.Contains(r.root, "_") && !m.resources[r.root+"."+r.attr] {
						t.Errorf("%s: %s.%s is not a resource of this module", r.at, r.root, r.attr)
					}
				}
			}
			for v := range m.vars {
				if !used[v] {
					t.Errorf("variable %q is declared but never used", v)
				}
			}
			var outs []string
			for o := range m.outputs {
				outs = append(outs, o)
			}
			sort.Strings(outs)
			if want := outputNames(); !reflect.DeepEqual(outs, want) {
				t.Errorf("outputs %v, lab status reads %v", outs, want)
			}
		})
	}
}

// outputNames are the outputs Outputs reads, from its json tags.
func outputNames() []string {
	var out []string
	tp := reflect.TypeOf(Outputs{})
	for i := 0; i < tp.NumField(); i++ {
		out = append(out, strings.Split(tp.Field(i).Tag.Get("json"), ",")[0])
	}
	sort.Strings(out)
	return out
}

// TestTFVarsFitBothModules: the tfvars JSON written from lab.yaml sets only
// declared variables, every variable without a default, and (checked
// through the variables' object types) exactly the attributes they declare.
func TestTFVarsFitBothModules(t *testing.T) {
	lab, err := spec.Load("../../lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vars, err := VarsFor(lab, t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(vars)
	var set map[string]map[string]any
	if err := json.Unmarshal(data, &set); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"calclab", "hyperv-taliesins"} {
		t.Run(dir, func(t *testing.T) {
			m := parseModule(t, dir)
			for k := range set {
				if _, ok := m.vars[k]; !ok {
					t.Errorf("tfvars sets %q, which %s does not declare", k, dir)
				}
			}
			for v, hasDefault := range m.vars {
				if _, ok := set[v]; !ok && !hasDefault {
					t.Errorf("variable %q has no default and the tfvars do not set it", v)
				}
			}
			attrs := objectAttrs(t, dir)
			for k, obj := range set {
				if k == "nodes" {
					for name, n := range obj {
						compareKeys(t, "nodes."+name, n.(map[string]any), attrs["nodes"])
					}
					continue
				}
				compareKeys(t, k, obj, attrs[k])
			}
		})
	}
}

func compareKeys(t *testing.T, what string, got map[string]any, want []string) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("%s: tfvars has %v, the variable's type declares %v", what, keys, want)
	}
}

// objectAttrs returns the attribute names of each object-typed variable
// (for map(object(...)), the object's).
func objectAttrs(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	p := hclparse.NewParser()
	for _, f := range files {
		file, diags := p.ParseHCLFile(f)
		if diags.HasErrors() {
			t.Fatal(diags.Error())
		}
		for _, b := range file.Body.(*hclsyntax.Body).Blocks {
			if b.Type != "variable" {
				continue
			}
			typ, ok := b.Body.Attributes["type"]
			if !ok {
				continue
			}
			var obj *hclsyntax.ObjectConsExpr
			hclsyntax.VisitAll(typ.Expr, func(n hclsyntax.Node) hcl.Diagnostics {
				if o, ok := n.(*hclsyntax.ObjectConsExpr); ok && obj == nil {
					obj = o
				}
				return nil
			})
			if obj == nil {
				continue
			}
			var names []string
			for _, item := range obj.Items {
				names = append(names, hcl.ExprAsKeyword(item.KeyExpr))
			}
			sort.Strings(names)
			out[b.Labels[0]] = names
		}
	}
	return out
}

// TestTerraformFmt runs the real terraform CLI's fmt -check on both
// configurations.
func TestTerraformFmt(t *testing.T) {
	tf, err := FindTerraform(context.Background())
	if err != nil {
		t.Skipf("%v", err)
	}
	for _, dir := range []string{"calclab", "hyperv-taliesins"} {
		t.Run(dir, func(t *testing.T) {
			cmd := exec.Command(tf, "fmt", "-check", "-diff", "-no-color", dir)
			cmd.Env = append(os.Environ(), "CHECKPOINT_DISABLE=1")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("terraform fmt -check %s: %v\n%s", dir, err, out)
			}
		})
	}
}
