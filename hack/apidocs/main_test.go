package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

const repoRoot = "../.."

// loaded is the model of the repository, loaded once for the package's
// tests: render only reads it.
var loaded = sync.OnceValues(func() (*model, error) { return load(repoRoot) })

// generated is the reference generate writes for the repository, from the
// shared model.
func generated() (string, error) {
	m, err := loaded()
	if err != nil {
		return "", err
	}
	return render(m), nil
}

// The committed reference is what the generator writes today: a comment
// changed in api/v1 without `make docs` fails here (and in the
// check-generated step of `make test`).
func TestReferenceIsUpToDate(t *testing.T) {
	want, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(repoRoot, defaultOutput))
	if err != nil {
		t.Fatalf("%v (run make docs)", err)
	}
	if string(got) == want {
		return
	}
	gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(want, "\n")
	for i := range max(len(gotLines), len(wantLines)) {
		g, w := line(gotLines, i), line(wantLines, i)
		if g != w {
			t.Fatalf("%s is stale (run make docs and commit it); first difference at line %d:\ncommitted: %s\ngenerated: %s", defaultOutput, i+1, g, w)
		}
	}
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "<end of file>"
}

// Every exported field of every API struct has a doc comment and a row in
// its type's section, and every API type is reached from StageSet. The
// fields are found here with go/parser alone, not with the generator's
// walk, so a field the walk would miss is still caught.
func TestEveryFieldIsDocumented(t *testing.T) {
	m, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]*section{}
	for _, s := range m.Local {
		sections[s.Key.Name] = s
	}

	fset := token.NewFileSet()
	dir := filepath.Join(repoRoot, apiDir)
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	types := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") || strings.HasPrefix(filepath.Base(name), "zz_generated") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				if !ts.Name.IsExported() || isListKind(ts) {
					continue
				}
				types++
				s, ok := sections[ts.Name.Name]
				if !ok {
					t.Errorf("type %s is not reached from %s: it has no section in the reference", ts.Name.Name, rootKind)
					continue
				}
				if len(s.Doc) == 0 {
					t.Errorf("type %s has no doc comment", ts.Name.Name)
				}
				if st, ok := ts.Type.(*ast.StructType); ok {
					checkFields(t, ts.Name.Name, st, s)
				}
			}
		}
	}
	if types < 20 {
		t.Fatalf("found only %d API types in %s", types, dir)
	}
}

func checkFields(t *testing.T, typeName string, st *ast.StructType, s *section) {
	t.Helper()
	rows := map[string]field{}
	for _, f := range s.Fields {
		rows[f.JSONName] = f
	}
	for _, f := range st.Fields.List {
		fieldName := typeName + "."
		if len(f.Names) > 0 {
			fieldName += f.Names[0].Name
			if !f.Names[0].IsExported() {
				continue
			}
		} else {
			fieldName += exprString(f.Type)
		}
		jsonName, opts, _ := strings.Cut(reflect.StructTag(strings.Trim(tagOf(f), "`")).Get("json"), ",")
		if jsonName == "-" {
			continue
		}
		if exprString(f.Type) == "metav1.TypeMeta" {
			// apiVersion and kind are written out by the generator.
			for _, name := range []string{"apiVersion", "kind"} {
				if _, ok := rows[name]; !ok {
					t.Errorf("%s: no row for %s", typeName, name)
				}
			}
			continue
		}
		prose, _ := splitDoc(docText(f.Doc))
		if len(paragraphs(prose)) == 0 {
			t.Errorf("field %s has no doc comment", fieldName)
		}
		if len(f.Names) == 0 && (jsonName == "" || hasOpt(opts, "inline")) {
			// Inlined: its fields are rows of this type; the generator
			// found them, and each needs a description.
			embedded := fieldName[strings.LastIndex(fieldName, ".")+1:]
			inlined := 0
			for _, r := range s.Fields {
				if strings.HasPrefix(r.GoName, embedded+".") {
					inlined++
				}
			}
			if inlined == 0 {
				t.Errorf("field %s is inlined but adds no rows", fieldName)
			}
			continue
		}
		if jsonName == "" {
			jsonName = f.Names[0].Name
		}
		if _, ok := rows[jsonName]; !ok {
			t.Errorf("field %s (%s) has no row in the reference", fieldName, jsonName)
		}
	}
	for _, r := range s.Fields {
		if strings.Contains(r.GoName, ".") && r.Description == "" {
			t.Errorf("%s: row %s (%s) has an empty description", typeName, r.JSONName, r.GoName)
		}
	}
}

func tagOf(f *ast.Field) string {
	if f.Tag == nil {
		return ""
	}
	return f.Tag.Value
}

// isListKind tells the list kind (StageSetList): a root kind whose only job
// is to hold items, left out of the reference. Only that one: another type
// whose name ends in List (an IgnoreList) must be documented.
func isListKind(ts *ast.TypeSpec) bool {
	return ts.Name.Name == rootKind+"List"
}

// Every link of the reference leads somewhere: an anchor of the file, or a
// file of the repository.
func TestReferenceLinksResolve(t *testing.T) {
	out, err := generated()
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(strings.TrimLeft(l, "#"), " "); ok && strings.HasPrefix(l, "#") {
			anchors[anchor(h)] = true
		}
	}
	base := filepath.Join(repoRoot, filepath.Dir(defaultOutput))
	// Code spans (patterns) are not links.
	prose := regexp.MustCompile("`[^`]*`").ReplaceAllString(out, "")
	links := regexp.MustCompile(`\]\(([^)]+)\)`).FindAllStringSubmatch(prose, -1)
	if len(links) < 50 {
		t.Fatalf("only %d links in the reference", len(links))
	}
	for _, l := range links {
		target := l[1]
		switch {
		case strings.HasPrefix(target, "https://"):
		case strings.HasPrefix(target, "#"):
			if !anchors[target[1:]] {
				t.Errorf("link to %s: no such heading", target)
			}
		default:
			file, _, _ := strings.Cut(target, "#")
			if _, err := os.Stat(filepath.Join(base, file)); err != nil {
				t.Errorf("link to %s: %v", target, err)
			}
		}
	}
}

// The types are in the order they are reached from StageSet, depth first.
func TestOrder(t *testing.T) {
	m, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range m.Local {
		got = append(got, s.Title)
	}
	want := []string{"StageSet", "StageSetSpec", "SourceReference", "DriftDetection", "IgnoreRule", "UpdateWindow", "Stage"}
	if !slices.Equal(got[:len(want)], want) {
		t.Errorf("order = %v, want it to start %v", got, want)
	}
	if i, j := slices.Index(got, "Stage"), slices.Index(got, "StageSetStatus"); i > j {
		t.Errorf("Stage (%d) after StageSetStatus (%d)", i, j)
	}
}

func TestParseMarker(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want marker
	}{
		{"required", marker{Name: "required"}},
		{"kubebuilder:validation:Optional", marker{Name: "optional"}},
		{"kubebuilder:default=MirrorPrune", marker{Name: "kubebuilder:default", Value: "MirrorPrune"}},
		{`kubebuilder:default="./"`, marker{Name: "kubebuilder:default", Value: "./"}},
		{`kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"`, marker{Name: "kubebuilder:validation:Pattern", Value: `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`}},
		{"kubebuilder:validation:Pattern=`^[a-z]+$`", marker{Name: "kubebuilder:validation:Pattern", Value: "^[a-z]+$"}},
		{`kubebuilder:validation:XValidation:rule="a, b || c",message="x, y"`, marker{Name: "kubebuilder:validation:XValidation", Args: map[string]string{"rule": "a, b || c", "message": "x, y"}}},
		{`kubebuilder:validation:XValidation:rule="a", message="spaced"`, marker{Name: "kubebuilder:validation:XValidation", Args: map[string]string{"rule": "a", "message": "spaced"}}},
		{"kubebuilder:resource:shortName=ss,categories={all,fluxcd}", marker{Name: "kubebuilder:resource", Args: map[string]string{"shortName": "ss", "categories": "{all,fluxcd}"}}},
	} {
		got, ok := parseMarker(tc.in)
		if !ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseMarker(%q) = %#v, %v; want %#v", tc.in, got, ok, tc.want)
		}
	}
	if _, ok := parseMarker("genclient"); ok {
		t.Error("parseMarker(genclient) is ok; want it ignored")
	}
}

func TestDefaultSentence(t *testing.T) {
	for _, tc := range []struct{ in, value, rest string }{
		{"Prune deletes objects. Defaults to true.", "true", "Prune deletes objects."},
		{"Namespace of the source. Defaults to the StageSet's namespace. References to other namespaces are refused.", "the StageSet's namespace", "Namespace of the source. References to other namespaces are refused."},
		{"Defaults to 5m.", "5m", ""},
		{"No default here.", "", "No default here."},
		{"It defaults to nothing. Defaults to x", "", "It defaults to nothing. Defaults to x"},
	} {
		value, rest := cutDefaultSentence(tc.in)
		if value != tc.value || rest != tc.rest {
			t.Errorf("cutDefaultSentence(%q) = %q, %q; want %q, %q", tc.in, value, rest, tc.value, tc.rest)
		}
	}
}

func TestMarkdown(t *testing.T) {
	for in, want := range map[string]string{
		"maps <Kind>/<name> of a | b":       `maps &lt;Kind&gt;/&lt;name&gt; of a \| b`,
		"as `self` <x>":                     "as `self` &lt;x&gt;",
		"with --no-cross-namespace-refs.":   "with `--no-cross-namespace-refs`.",
		"the controller's `--flag` (--x-y)": "the controller's `--flag` (`--x-y`)",
		"code `a|b`":                        "code `a\\|b`",
	} {
		if got := markdown(in); got != want {
			t.Errorf("markdown(%q) = %q, want %q", in, got, want)
		}
	}
	if got := anchor("meta.DependencyReference"); got != "metadependencyreference" {
		t.Errorf("anchor = %q", got)
	}
	if got := anchor("Event reasons that are not Ready reasons"); got != "event-reasons-that-are-not-ready-reasons" {
		t.Errorf("anchor = %q", got)
	}
}
