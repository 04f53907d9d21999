package main

import (
	"slices"
	"strings"
)

// required follows controller-gen: an explicit marker decides, else a field
// with omitempty (or omitzero) is optional.
func required(markers []marker, opts string) bool {
	for i := len(markers) - 1; i >= 0; i-- {
		switch markers[i].Name {
		case "required":
			return true
		case "optional":
			return false
		}
	}
	return !hasOpt(opts, "omitempty") && !hasOpt(opts, "omitzero")
}

func hasOpt(opts, name string) bool {
	return slices.Contains(strings.Split(opts, ","), name)
}

// defaultOf returns the default of a field: the API server's
// (+kubebuilder:default, in code) or else the one the controller applies, as
// the doc comment says it in a sentence "Defaults to X." (plain text), which
// then leaves the description.
func defaultOf(markers []marker, description string) (string, string) {
	sentence, rest := cutDefaultSentence(description)
	if v, ok := value(markers, "kubebuilder:default"); ok {
		return "`" + v + "`", rest
	}
	if sentence != "" {
		return markdown(sentence), rest
	}
	return "", description
}

// cutDefaultSentence finds the sentence "Defaults to X." and returns X and
// the description without it.
func cutDefaultSentence(s string) (string, string) {
	const lead = "Defaults to "
	start := -1
	if strings.HasPrefix(s, lead) {
		start = 0
	} else if i := strings.Index(s, ". "+lead); i >= 0 {
		start = i + 2
	}
	if start < 0 {
		return "", s
	}
	end := strings.Index(s[start:], ". ")
	if end < 0 {
		if !strings.HasSuffix(s, ".") {
			return "", s
		}
		end = len(s) - start - 1
	}
	value := s[start+len(lead) : start+end]
	rest := strings.TrimSpace(s[:start] + s[min(start+end+2, len(s)):])
	return value, rest
}

// validation renders the schema checks of a field.
func validation(markers []marker) []string {
	var out []string
	get := func(name string) string { v, _ := value(markers, name); return v }
	if v := get("kubebuilder:validation:Enum"); v != "" {
		vals := strings.Split(v, ";")
		for i := range vals {
			vals[i] = "`" + vals[i] + "`"
		}
		out = append(out, "one of "+strings.Join(vals, ", "))
	}
	out = appendRange(out, "length", get("kubebuilder:validation:MinLength"), get("kubebuilder:validation:MaxLength"))
	out = appendRange(out, "items", get("kubebuilder:validation:MinItems"), get("kubebuilder:validation:MaxItems"))
	out = appendRange(out, "value", get("kubebuilder:validation:Minimum"), get("kubebuilder:validation:Maximum"))
	if v := get("kubebuilder:validation:Format"); v != "" {
		out = append(out, "format "+v)
	}
	switch v := get("kubebuilder:validation:Pattern"); v {
	case "":
	case durationPattern:
		out = append(out, "units `ms`, `s`, `m`, `h`")
	default:
		out = append(out, "pattern `"+strings.ReplaceAll(v, "|", `\|`)+"`")
	}
	for _, m := range find(markers, "kubebuilder:validation:XValidation") {
		out = append(out, "rule: "+markdown(m.Args["message"]))
	}
	return out
}

func appendRange(out []string, what, lo, hi string) []string {
	switch {
	case lo != "" && hi != "":
		return append(out, what+" "+lo+"–"+hi)
	case lo != "":
		return append(out, what+" ≥ "+lo)
	case hi != "":
		return append(out, what+" ≤ "+hi)
	}
	return out
}
