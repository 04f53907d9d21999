package main

import (
	"fmt"
	"go/ast"
	"go/doc"
	"reflect"
	"slices"
	"strings"
)

// typeKey names a type: its package's import path ("" for the API
// package) and its name.
type typeKey struct{ Pkg, Name string }

// section is one type of the reference.
type section struct {
	Key   typeKey
	Title string // StageSet, meta.DependencyReference
	// Doc is the type's doc comment, in paragraphs, markers stripped.
	Doc []string
	// Struct types have fields; other named types have an underlying type
	// and, when they are an enum, values.
	Fields     []field
	Underlying string
	Values     []constant
	// Rules are the messages of the type's CEL validation rules.
	Rules []string
	// Resource is set on the root kind: its kubebuilder resource markers.
	Resource []marker
	// External types: where they come from; Note replaces the field table
	// of the types that serialize as a plain string.
	Link string
	Note string

	AppearsIn []typeKey
}

// field is one row of a type's table.
type field struct {
	GoName      string // Spec, or Type.Field for inlined fields
	JSONName    string
	Type        string // Markdown
	Required    bool
	Default     string // Markdown
	Validation  []string
	Description string // Markdown, one paragraph
}

// constant is one documented constant: a reason or an enum value.
type constant struct {
	Name, Value, Doc string
}

// constGroup is a const block of the API package, such as the Ready
// reasons.
type constGroup struct {
	Title, Doc string
	Consts     []constant
}

// opaque are the types from other packages that serialize as a plain value
// (or that are the standard metadata): the reference says what they hold
// instead of listing their Go fields.
var opaque = map[typeKey]string{
	{"k8s.io/apimachinery/pkg/apis/meta/v1", "Duration"}: "A duration, as a string of decimal numbers, each with a unit, such as `30s`, `5m` or `1h30m`. " +
		"A field whose validation says \"units `ms`, `s`, `m`, `h`\" matches the pattern `" + durationPattern + "`.",
	{"k8s.io/apimachinery/pkg/apis/meta/v1", "Time"}: "A timestamp in RFC 3339 form, in UTC, such as `2026-05-04T22:00:00Z`.",
	{"k8s.io/apimachinery/pkg/apis/meta/v1", "ObjectMeta"}: "The standard metadata of every Kubernetes object: `name`, `namespace`, `labels`, `annotations` and the fields the API server sets. " +
		"See [ObjectMeta](https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/) in the Kubernetes API reference.",
}

// durationPattern is the pattern of the API's duration fields, shown in
// their validation as the units it allows.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`

// typeMeta is apiVersion and kind, written out for the root kind.
var typeMeta = typeKey{"k8s.io/apimachinery/pkg/apis/meta/v1", "TypeMeta"}

// model is what the reference is rendered from.
type model struct {
	Group, Version string
	Local          []*section // in the order they are reached from the root
	External       []*section
	Reasons        []constGroup
	// Runbooks holds the reasons that have a runbook.
	Runbooks map[string]bool
}

// builder walks the types reachable from the root kind, depth first in
// field order, so a type's section follows the one that first uses it.
type builder struct {
	l        *loader
	api      *pkg
	sections map[typeKey]*section
	m        *model
}

func buildModel(l *loader, api *pkg, root string) (*model, error) {
	b := &builder{l: l, api: api, sections: map[typeKey]*section{}, m: &model{Version: api.Doc.Name}}
	for _, c := range api.Doc.Consts {
		for _, spec := range c.Decl.Specs {
			vs := spec.(*ast.ValueSpec)
			if vs.Names[0].Name == "GroupName" {
				b.m.Group = literal(vs.Values[0])
			}
		}
	}
	if _, ok := api.types[root]; !ok {
		return nil, fmt.Errorf("no type %s in %s", root, api.ImportPath)
	}
	if err := b.visit(typeKey{"", root}, nil); err != nil {
		return nil, err
	}
	b.m.Reasons = reasonGroups(api)
	return b.m, nil
}

// visit adds the section of a type and of every type it refers to.
func (b *builder) visit(key typeKey, from *typeKey) error {
	if s, ok := b.sections[key]; ok {
		if from != nil && !slices.Contains(s.AppearsIn, *from) {
			s.AppearsIn = append(s.AppearsIn, *from)
		}
		return nil
	}
	t, err := b.lookup(key)
	if err != nil {
		return err
	}
	p := b.pkgOf(key)
	s := &section{Key: key, Title: b.title(key)}
	if from != nil {
		s.AppearsIn = []typeKey{*from}
	}
	b.sections[key] = s
	if key.Pkg == "" {
		b.m.Local = append(b.m.Local, s)
	} else {
		b.m.External = append(b.m.External, s)
		s.Link = p.Link + "#" + key.Name
	}
	if note, ok := opaque[key]; ok {
		s.Note = note
		return nil
	}

	prose, markers := splitDoc(t.Doc)
	s.Doc = paragraphs(prose)
	for _, m := range find(markers, "kubebuilder:validation:XValidation") {
		s.Rules = append(s.Rules, m.Args["message"])
	}
	if find(markers, "kubebuilder:object:root=true") != nil {
		s.Resource = markers
	}

	spec := typeSpec(t)
	st, ok := spec.Type.(*ast.StructType)
	if !ok {
		s.Underlying = b.typeString(p, spec, spec.Type)
		for _, c := range t.Consts {
			s.Values = append(s.Values, consts(c)...)
		}
		return nil
	}
	var refs []typeKey
	fields, err := b.fields(p, spec, st, "", &refs)
	if err != nil {
		return err
	}
	s.Fields = fields
	for _, ref := range refs {
		if err := b.visit(ref, &key); err != nil {
			return err
		}
	}
	return nil
}

// fields returns the rows of a struct, with the fields of inlined embedded
// structs in place, and adds the types they refer to to refs. embedDoc is
// the doc of the field that inlined this struct: it is added to each row.
func (b *builder) fields(p *pkg, spec *ast.TypeSpec, st *ast.StructType, embedDoc string, refs *[]typeKey) ([]field, error) {
	var out []field
	for _, f := range st.Fields.List {
		tag := reflect.StructTag("")
		if f.Tag != nil {
			tag = reflect.StructTag(strings.Trim(f.Tag.Value, "`"))
		}
		jsonTag, _ := tag.Lookup("json")
		jsonName, opts, _ := strings.Cut(jsonTag, ",")
		if jsonName == "-" {
			continue
		}
		prose, markers := splitDoc(docText(f.Doc))
		description := strings.Join(paragraphs(prose), " ")

		if len(f.Names) == 0 && (jsonName == "" || hasOpt(opts, "inline")) {
			key, ok := b.resolve(p, spec, f.Type)
			if !ok {
				return nil, fmt.Errorf("%s: cannot inline %s", spec.Name.Name, exprString(f.Type))
			}
			if key == typeMeta {
				out = append(out, b.typeMetaFields()...)
				continue
			}
			t, err := b.lookup(key)
			if err != nil {
				return nil, err
			}
			et, ok := typeSpec(t).Type.(*ast.StructType)
			if !ok {
				return nil, fmt.Errorf("%s: cannot inline %s, not a struct", spec.Name.Name, exprString(f.Type))
			}
			inner, err := b.fields(b.pkgOf(key), typeSpec(t), et, description, refs)
			if err != nil {
				return nil, err
			}
			for i := range inner {
				inner[i].GoName = key.Name + "." + inner[i].GoName
			}
			out = append(out, inner...)
			continue
		}

		var goName string
		if len(f.Names) == 0 {
			goName = exprString(f.Type)
			goName = goName[strings.LastIndex(goName, ".")+1:]
		} else {
			goName = f.Names[0].Name
		}
		if !ast.IsExported(goName) {
			continue
		}
		if jsonName == "" {
			jsonName = goName
		}
		if embedDoc != "" {
			description = strings.TrimSpace(description + " " + embedDoc)
		}
		row := field{
			GoName:   goName,
			JSONName: jsonName,
			Type:     b.typeString(p, spec, f.Type),
			Required: required(markers, opts),
		}
		// The markers of a named field type (the enum of StagePhase) hold
		// for the field too.
		if key, ok := b.resolve(p, spec, f.Type); ok {
			t, err := b.lookup(key)
			if err != nil {
				return nil, err
			}
			if !b.plain(key, t) {
				*refs = append(*refs, key)
			}
			if _, isStruct := typeSpec(t).Type.(*ast.StructType); !isStruct {
				_, typeMarkers := splitDoc(t.Doc)
				markers = append(typeMarkers, markers...)
			}
		}
		if p == b.api {
			row.Default, description = defaultOf(markers, description)
		} else if v, ok := value(markers, "kubebuilder:default"); ok {
			row.Default = "`" + v + "`"
		}
		row.Validation = validation(markers)
		row.Description = markdown(description)
		out = append(out, row)
	}
	return out, nil
}

// typeMetaFields are apiVersion and kind of the root kind.
func (b *builder) typeMetaFields() []field {
	return []field{
		{GoName: "APIVersion", JSONName: "apiVersion", Type: "string", Required: true, Description: "`" + b.m.Group + "/" + b.m.Version + "`"},
		{GoName: "Kind", JSONName: "kind", Type: "string", Required: true, Description: "`" + b.sectionRoot() + "`"},
	}
}

func (b *builder) sectionRoot() string { return b.m.Local[0].Key.Name }

// lookup returns the declaration of a named type.
func (b *builder) lookup(key typeKey) (*doc.Type, error) {
	p := b.api
	if key.Pkg != "" {
		var err error
		if p, err = b.l.load(key.Pkg); err != nil {
			return nil, err
		}
	}
	t, ok := p.types[key.Name]
	if !ok {
		return nil, fmt.Errorf("no type %s in %s", key.Name, p.ImportPath)
	}
	return t, nil
}

// pkgOf returns the package of a type lookup has found.
func (b *builder) pkgOf(key typeKey) *pkg {
	if key.Pkg == "" {
		return b.api
	}
	return b.l.pkgs[key.Pkg]
}

// plain tells the types of other packages that are a string or a number
// under another name (metav1.ConditionStatus): the reference names their
// underlying type, with no section of their own.
func (b *builder) plain(key typeKey, t *doc.Type) bool {
	if key.Pkg == "" {
		return false
	}
	if _, ok := opaque[key]; ok {
		return false
	}
	_, isIdent := typeSpec(t).Type.(*ast.Ident)
	return isIdent
}

// resolve returns the named type an expression refers to, through pointers,
// slices and map values; not ok for the predeclared types.
func (b *builder) resolve(p *pkg, spec *ast.TypeSpec, e ast.Expr) (typeKey, bool) {
	switch e := e.(type) {
	case *ast.StarExpr:
		return b.resolve(p, spec, e.X)
	case *ast.ArrayType:
		return b.resolve(p, spec, e.Elt)
	case *ast.MapType:
		return b.resolve(p, spec, e.Value)
	case *ast.Ident:
		if _, ok := p.types[e.Name]; ok {
			return b.key(p.ImportPath, e.Name), true
		}
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok {
			if ip, ok := importOf(p.fileOf(spec), x.Name); ok {
				return b.key(ip, e.Sel.Name), true
			}
		}
	}
	return typeKey{}, false
}

// key names the API package "", whatever path it was loaded under.
func (b *builder) key(importPath, name string) typeKey {
	if importPath == b.api.ImportPath {
		importPath = ""
	}
	return typeKey{importPath, name}
}

// title is a type's heading: qualified by its package's alias when it
// comes from another package.
func (b *builder) title(key typeKey) string {
	if key.Pkg == "" {
		return key.Name
	}
	alias := b.l.aliases[key.Pkg]
	if alias == "" {
		alias = key.Pkg[strings.LastIndex(key.Pkg, "/")+1:]
	}
	return alias + "." + key.Name
}

// typeString renders a field type: named types link to their section,
// pointers are dropped (the required column says whether a field may be
// left out), slices and maps are written as in Go.
func (b *builder) typeString(p *pkg, spec *ast.TypeSpec, e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return b.typeString(p, spec, e.X)
	case *ast.ArrayType:
		return `\[\]` + b.typeString(p, spec, e.Elt)
	case *ast.MapType:
		return `map\[` + b.typeString(p, spec, e.Key) + `\]` + b.typeString(p, spec, e.Value)
	}
	if key, ok := b.resolve(p, spec, e); ok {
		if t, err := b.lookup(key); err == nil && b.plain(key, t) {
			return exprString(typeSpec(t).Type)
		}
		title := b.title(key)
		return "[" + title + "](#" + anchor(title) + ")"
	}
	return exprString(e)
}

// typeSpec is the declaration of a documented type.
func typeSpec(t *doc.Type) *ast.TypeSpec {
	for _, s := range t.Decl.Specs {
		if ts, ok := s.(*ast.TypeSpec); ok && ts.Name.Name == t.Name {
			return ts
		}
	}
	panic("no declaration of " + t.Name)
}
