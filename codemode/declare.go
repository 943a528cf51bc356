package codemode

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// maxTypeDepth bounds how deep a schema is rendered; deeper parts read unknown,
// so a recursive or huge schema cannot blow up a prompt.
const maxTypeDepth = 6

// Declarations renders tools as TypeScript overloads of callTool, each with its
// description as a doc comment, argument types from the input schema and the
// result type from the output schema when there is one.
func Declarations(tools []ToolInfo) string {
	var b strings.Builder
	b.WriteString("// Tools this script may call, as TypeScript declarations.\n")
	b.WriteString("// Call one with: const result = await callTool(name, args);\n\n")
	if len(tools) == 0 {
		b.WriteString("// (no tools are configured)\n")
	}
	for _, t := range tools {
		writeDoc(&b, t.Description, "")
		fmt.Fprintf(&b, "declare function callTool(name: %s, %s): Promise<%s>;\n\n",
			nameType(t.Name), argsParam(t.InputSchema), resultType(t.OutputSchema))
	}
	return b.String()
}

// nameType is a string literal type, or a template literal type for a pattern.
func nameType(name string) string {
	if !strings.Contains(name, "*") {
		return quote(name)
	}
	esc := strings.NewReplacer("`", "\\`", "\\", "\\\\", "${", "\\${").Replace(name)
	return "`" + strings.ReplaceAll(esc, "*", "${string}") + "`"
}

// argsParam is the args parameter, optional when the schema requires nothing.
func argsParam(schema map[string]any) string {
	if schema == nil {
		return "args?: Record<string, unknown>"
	}
	if len(stringList(schema["required"])) == 0 {
		return "args?: " + tsType(schema, "", 0)
	}
	return "args: " + tsType(schema, "", 0)
}

func resultType(schema map[string]any) string {
	if schema == nil {
		return "any"
	}
	return tsType(schema, "", 0)
}

// tsType renders a JSON schema as a TypeScript type; indent is the current
// line's indentation for multi-line object types.
func tsType(s map[string]any, indent string, depth int) string {
	if s == nil || depth > maxTypeDepth {
		return "unknown"
	}
	if c, ok := s["const"]; ok {
		return literal(c)
	}
	if enum, ok := s["enum"].([]any); ok && len(enum) > 0 {
		return union(mapSlice(enum, literal))
	}
	for _, key := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[key].([]any); ok && len(alts) > 0 {
			return union(mapSlice(alts, func(a any) string { return tsType(asMap(a), indent, depth+1) }))
		}
	}
	types := stringList(s["type"])
	if len(types) == 0 && s["properties"] != nil {
		types = []string{"object"}
	}
	if len(types) == 0 {
		return "unknown"
	}
	types = nullLast(types)
	return union(mapSlice(types, func(t string) string { return typeNamed(t, s, indent, depth) }))
}

func typeNamed(t string, s map[string]any, indent string, depth int) string {
	switch t {
	case "string", "boolean", "null":
		return t
	case "number", "integer":
		return "number"
	case "array":
		item := tsType(asMap(s["items"]), indent, depth+1)
		if topLevelUnion(item) {
			item = "(" + item + ")"
		}
		return item + "[]"
	case "object":
		return objectType(s, indent, depth)
	}
	return "unknown"
}

func objectType(s map[string]any, indent string, depth int) string {
	props := asMap(s["properties"])
	if len(props) == 0 {
		if extra := asMap(s["additionalProperties"]); extra != nil {
			return "Record<string, " + tsType(extra, indent, depth+1) + ">"
		}
		if s["additionalProperties"] == false {
			return "{}"
		}
		return "Record<string, unknown>"
	}
	required := stringList(s["required"])
	var b strings.Builder
	b.WriteString("{\n")
	inner := indent + "  "
	for _, name := range propOrder(props, required) {
		p := asMap(props[name])
		writeDoc(&b, str(p["description"]), inner)
		opt := "?"
		if contains(required, name) {
			opt = ""
		}
		fmt.Fprintf(&b, "%s%s%s: %s;\n", inner, propName(name), opt, tsType(p, inner, depth+1))
	}
	b.WriteString(indent + "}")
	return b.String()
}

// propOrder lists required properties first, each group in name order: a
// schema's own order is lost in a JSON object, and this one is stable.
func propOrder(props map[string]any, required []string) []string {
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := contains(required, names[i]), contains(required, names[j])
		if ri != rj {
			return ri
		}
		return names[i] < names[j]
	})
	return names
}

var identifier = regexp.MustCompile(`^[A-Za-z_$][A-Za-z0-9_$]*$`)

func propName(name string) string {
	if identifier.MatchString(name) {
		return name
	}
	return quote(name)
}

// writeDoc writes a description as a doc comment; "*/" in it cannot end the
// comment early.
func writeDoc(b *strings.Builder, text, indent string) {
	text = strings.TrimSpace(strings.ReplaceAll(text, "*/", "*\\/"))
	if text == "" {
		return
	}
	lines := strings.Split(text, "\n")
	if len(lines) == 1 {
		fmt.Fprintf(b, "%s/** %s */\n", indent, text)
		return
	}
	fmt.Fprintf(b, "%s/**\n", indent)
	for _, l := range lines {
		fmt.Fprintf(b, "%s * %s\n", indent, strings.TrimRight(l, " \t\r"))
	}
	fmt.Fprintf(b, "%s */\n", indent)
}

func union(parts []string) string {
	seen := map[string]bool{}
	out := parts[:0:0]
	for _, p := range parts {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return strings.Join(out, " | ")
}

// topLevelUnion reports whether t is a union outside any brackets, so that
// "a | b" becomes "(a | b)[]" while "{ x: a | b }" stays as it is.
func topLevelUnion(t string) bool {
	depth := 0
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '{', '(', '<', '[':
			depth++
		case '}', ')', '>', ']':
			depth--
		case '|':
			if depth == 0 {
				return true
			}
		}
	}
	return false
}

// nullLast orders a type list so "string | null" reads as it is usually written.
func nullLast(types []string) []string {
	out := make([]string, 0, len(types))
	hasNull := false
	for _, t := range types {
		if t == "null" {
			hasNull = true
			continue
		}
		out = append(out, t)
	}
	if hasNull {
		out = append(out, "null")
	}
	return out
}

func literal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "unknown"
	}
	return string(b)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// stringList reads a schema keyword that is a string or a list of strings.
func stringList(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []string:
		return v
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func mapSlice[T any](in []T, f func(T) string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
