package main

import (
	"go/ast"
	"strconv"
	"strings"
)

// A marker is one kubebuilder comment line such as
// +kubebuilder:validation:MaxLength=63, split into its name and either a
// single value (Value) or named arguments (Args).
type marker struct {
	Name  string
	Value string
	Args  map[string]string
}

// The markers whose value follows '='; the others in argMarkers take
// key=value arguments after ':'. Flag markers (+required) have neither.
var (
	valueMarkers = []string{
		"kubebuilder:default",
		"kubebuilder:validation:Enum",
		"kubebuilder:validation:ExclusiveMaximum",
		"kubebuilder:validation:ExclusiveMinimum",
		"kubebuilder:validation:Format",
		"kubebuilder:validation:MaxItems",
		"kubebuilder:validation:MaxLength",
		"kubebuilder:validation:MaxProperties",
		"kubebuilder:validation:Maximum",
		"kubebuilder:validation:MinItems",
		"kubebuilder:validation:MinLength",
		"kubebuilder:validation:MinProperties",
		"kubebuilder:validation:Minimum",
		"kubebuilder:validation:Pattern",
		"kubebuilder:validation:Type",
		"kubebuilder:validation:UniqueItems",
	}
	argMarkers = []string{
		"kubebuilder:printcolumn",
		"kubebuilder:resource",
		"kubebuilder:validation:XValidation",
	}
)

// splitDoc splits a doc comment into its prose lines and its markers. As
// controller-gen does, a line "---" ends the prose: what follows is for Go
// readers only.
func splitDoc(text string) (prose []string, markers []marker) {
	hidden := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "+"):
			if m, ok := parseMarker(trimmed[1:]); ok {
				markers = append(markers, m)
			}
		case trimmed == "---":
			hidden = true
		case !hidden:
			prose = append(prose, line)
		}
	}
	return prose, markers
}

// docText is the text of a comment group, empty for none.
func docText(groups ...*ast.CommentGroup) string {
	var parts []string
	for _, g := range groups {
		if g != nil {
			parts = append(parts, g.Text())
		}
	}
	return strings.Join(parts, "\n")
}

// parseMarker reads a marker line without its '+'. Markers this generator
// does not use are reported as not ok.
func parseMarker(s string) (marker, bool) {
	switch s {
	case "required", "kubebuilder:validation:Required":
		return marker{Name: "required"}, true
	case "optional", "kubebuilder:validation:Optional":
		return marker{Name: "optional"}, true
	case "kubebuilder:subresource:status", "kubebuilder:object:root=true":
		return marker{Name: s}, true
	}
	for _, name := range valueMarkers {
		if rest, ok := strings.CutPrefix(s, name+"="); ok {
			value, _ := readValue(rest, false)
			return marker{Name: name, Value: value}, true
		}
	}
	for _, name := range argMarkers {
		if rest, ok := strings.CutPrefix(s, name+":"); ok {
			return marker{Name: name, Args: parseArgs(rest)}, true
		}
	}
	return marker{}, false
}

// parseArgs reads key=value,key=value; values may be quoted ("..." with Go
// escapes, or `...`) or lists in braces.
func parseArgs(s string) map[string]string {
	args := map[string]string{}
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(s), ",")) {
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			args[strings.TrimSpace(s)] = ""
			return args
		}
		value, n := readValue(strings.TrimSpace(rest), true)
		args[strings.TrimSpace(key)] = value
		s = strings.TrimSpace(rest)[n:]
	}
	return args
}

// readValue reads one value at the start of s and returns it with the
// number of bytes it took. In an argument list a bare value ends at a comma
// outside braces; a single value takes the rest of the line.
func readValue(s string, inArgs bool) (string, int) {
	if s == "" {
		return "", 0
	}
	switch s[0] {
	case '"':
		if q, err := strconv.QuotedPrefix(s); err == nil {
			v, _ := strconv.Unquote(q)
			return v, len(q)
		}
	case '`':
		if end := strings.IndexByte(s[1:], '`'); end >= 0 {
			return s[1 : end+1], end + 2
		}
	}
	if !inArgs {
		return s, len(s)
	}
	depth := 0
	for i, r := range s {
		switch {
		case r == '{':
			depth++
		case r == '}':
			depth--
		case r == ',' && depth == 0:
			return s[:i], i
		}
	}
	return s, len(s)
}

// find returns the markers of a name.
func find(markers []marker, name string) []marker {
	var out []marker
	for _, m := range markers {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

// value returns the value of the last marker of a name ("" for none).
func value(markers []marker, name string) (string, bool) {
	found := find(markers, name)
	if len(found) == 0 {
		return "", false
	}
	return found[len(found)-1].Value, true
}

// braceList reads {a,b} (or a single bare value) as a list.
func braceList(s string) []string {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
