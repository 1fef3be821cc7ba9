package spec

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkShape walks the YAML tree of a lab file against the Go type it
// decodes into, and reports the first key that is not a field and the first
// value of the wrong kind in plain words, with its line and field path
// (yaml's own errors name Go types: "field cpu not found in type
// spec.Node", "cannot unmarshal !!str `x` into int").
func checkShape(file string, n *yaml.Node, t reflect.Type, path string) error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		return checkShape(file, n.Content[0], t, path)
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil // absent: the default applies
	}
	bad := func(format string, args ...any) error {
		field := path
		if field == "" {
			field = "the file"
		}
		return &Error{File: file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := yamlFields(t)
		if n.Kind != yaml.MappingNode {
			return bad("%s; it must be a mapping of these fields: %s", describe(n), strings.Join(fieldNames(t), ", "))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				continue
			}
			if first, dup := seen[k.Value]; dup {
				return &Error{File: file, Line: k.Line, Field: p, Msg: fmt.Sprintf("set twice (first on line %d); keep one", first)}
			}
			seen[k.Value] = k.Line
			ft, ok := fields[k.Value]
			if !ok {
				where := "here"
				if path != "" {
					where = "in " + path
				}
				return &Error{File: file, Line: k.Line, Field: p,
					Msg: fmt.Sprintf("unknown field; the fields %s are %s", where, strings.Join(fieldNames(t), ", "))}
			}
			if err := checkShape(file, v, ft, p); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad("%s; it must be a list", describe(n))
		}
		for i, c := range n.Content {
			if err := checkShape(file, c, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			return bad("%s; it must be a whole number", describe(n))
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return bad("%s is too large", n.Value)
		}
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			return bad("%s; it must be true or false", describe(n))
		}
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return bad("%s; it must be a single value (quote it if it holds special characters)", describe(n))
		}
		return nil
	}
	return nil
}

// describe says what a YAML value is, in the file's own terms.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "got a mapping"
	case yaml.SequenceNode:
		return "got a list"
	}
	return "got " + strconv.Quote(n.Value)
}

// yamlFields maps the yaml names of t's fields to their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if name := yamlName(f); name != "" {
			out[name] = f.Type
		}
	}
	return out
}

// fieldNames lists the yaml names of t's fields in declaration order.
func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if name := yamlName(t.Field(i)); name != "" {
			out = append(out, name)
		}
	}
	return out
}

func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

// yamlError turns one of yaml's own errors into an Error naming its line,
// for what checkShape does not catch (syntax errors).
func yamlError(file string, err error) error {
	var msgs []string
	if te, ok := err.(*yaml.TypeError); ok {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	e := &Error{File: file}
	var rest []string
	for _, m := range msgs {
		m = strings.TrimSpace(m)
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			if e.Line == 0 {
				e.Line, _ = strconv.Atoi(g[1])
			}
			m = g[2]
		}
		rest = append(rest, m)
	}
	e.Msg = "not valid YAML: " + strings.Join(rest, "; ")
	return e
}
