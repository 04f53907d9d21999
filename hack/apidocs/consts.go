package main

import (
	"go/ast"
	"go/doc"
	"sort"
	"strings"
)

// reasonGroups returns the const blocks whose names all end in Reason, in
// source order: the Ready reasons and the event reasons.
func reasonGroups(api *pkg) []constGroup {
	values := append([]*doc.Value(nil), api.Doc.Consts...)
	sort.Slice(values, func(i, j int) bool {
		pi, pj := api.fset.Position(values[i].Decl.Pos()), api.fset.Position(values[j].Decl.Pos())
		if pi.Filename != pj.Filename {
			return pi.Filename < pj.Filename
		}
		return pi.Offset < pj.Offset
	})
	var groups []constGroup
	for _, v := range values {
		all := len(v.Names) > 0
		for _, n := range v.Names {
			all = all && strings.HasSuffix(n, "Reason")
		}
		if !all {
			continue
		}
		text := strings.Join(paragraphs(strings.Split(v.Doc, "\n")), " ")
		title, rest, _ := strings.Cut(text, ". ")
		title = strings.TrimSuffix(strings.TrimSpace(stripSpecRef(title)), ".")
		groups = append(groups, constGroup{Title: title, Doc: paraMarkdown(stripSpecRef(rest)), Consts: consts(v)})
	}
	return groups
}

// stripSpecRef drops "(SPEC §9)": the product spec is not published.
func stripSpecRef(s string) string {
	for {
		i := strings.Index(s, " (SPEC §")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i:], ")")
		if j < 0 {
			return s
		}
		s = s[:i] + s[i+j+1:]
	}
}

// consts returns the constants of a const block with their doc comments.
func consts(v *doc.Value) []constant {
	var out []constant
	for _, spec := range v.Decl.Specs {
		vs := spec.(*ast.ValueSpec)
		prose, _ := splitDoc(docText(vs.Doc))
		for i, name := range vs.Names {
			c := constant{Name: name.Name, Doc: markdown(strings.Join(paragraphs(prose), " "))}
			if i < len(vs.Values) {
				c.Value = literal(vs.Values[i])
			}
			out = append(out, c)
		}
	}
	return out
}
