package main

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/doc"
	"go/parser"
	"go/token"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// pkg is one parsed Go package: the API package or a package it refers to.
type pkg struct {
	ImportPath string
	// Alias is how the reference names the package's types: the name the
	// API package imports it under (metav1, meta, kustomize).
	Alias string
	// Link is the pkg.go.dev page of the package at the version in use, ""
	// for the API package.
	Link  string
	Doc   *doc.Package
	fset  *token.FileSet
	files map[string]*ast.File // by file name
	types map[string]*doc.Type
}

// loader parses packages once each. Packages other than the API package are
// found the way the go command finds them, from the module of root, so the
// reference describes the versions the CRD is generated from.
type loader struct {
	root    string
	aliases map[string]string // import path → alias
	pkgs    map[string]*pkg
}

func newLoader(root string) *loader {
	return &loader{root: root, aliases: map[string]string{}, pkgs: map[string]*pkg{}}
}

// loadDir parses the Go files of dir that the build includes.
func (l *loader) loadDir(importPath, dir string) (*pkg, error) {
	bp, err := build.Default.ImportDir(dir, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	return l.parse(importPath, "", bp)
}

// load parses the package of an import path.
func (l *loader) load(importPath string) (*pkg, error) {
	if p, ok := l.pkgs[importPath]; ok {
		return p, nil
	}
	bp, err := build.Default.Import(importPath, l.root, 0)
	if err != nil {
		return nil, fmt.Errorf("finding %s: %w", importPath, err)
	}
	return l.parse(importPath, pkgGoDevLink(importPath, bp.Dir), bp)
}

func (l *loader) parse(importPath, link string, bp *build.Package) (*pkg, error) {
	fset := token.NewFileSet()
	names := append([]string(nil), bp.GoFiles...)
	sort.Strings(names)
	var files []*ast.File
	byName := map[string]*ast.File{}
	for _, name := range names {
		filename := filepath.Join(bp.Dir, name)
		f, err := parser.ParseFile(fset, filename, nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		byName[filename] = f
	}
	// AllDecls and PreserveAST: keep every declaration and field as written;
	// the generator picks the exported ones itself.
	d, err := doc.NewFromFiles(fset, files, importPath, doc.AllDecls|doc.PreserveAST)
	if err != nil {
		return nil, err
	}
	p := &pkg{ImportPath: importPath, Link: link, Doc: d, fset: fset, files: byName, types: map[string]*doc.Type{}}
	for _, t := range d.Types {
		p.types[t.Name] = t
	}
	p.Alias = l.aliases[importPath]
	if p.Alias == "" {
		p.Alias = d.Name
	}
	l.pkgs[importPath] = p
	// The API package's own import names become the aliases of the others.
	for _, f := range files {
		for _, spec := range f.Imports {
			ip, _ := strconv.Unquote(spec.Path.Value)
			if _, ok := l.aliases[ip]; !ok && spec.Name != nil {
				l.aliases[ip] = spec.Name.Name
			}
		}
	}
	return p, nil
}

// fileOf returns the file a node of p is declared in.
func (p *pkg) fileOf(n ast.Node) *ast.File {
	return p.files[p.fset.Position(n.Pos()).Filename]
}

// importOf returns the import path a file names with a package name.
func importOf(f *ast.File, name string) (string, bool) {
	for _, spec := range f.Imports {
		ip, _ := strconv.Unquote(spec.Path.Value)
		local := path.Base(ip)
		if spec.Name != nil {
			local = spec.Name.Name
		}
		if local == name {
			return ip, true
		}
	}
	return "", false
}

// pkgGoDevLink returns the pkg.go.dev page of a package at the version the
// module cache holds it under (dir is .../module@version/sub/path), or the
// unversioned page when dir is not in the module cache.
func pkgGoDevLink(importPath, dir string) string {
	parts := strings.Split(filepath.ToSlash(dir), "/")
	for i, part := range parts {
		if at := strings.LastIndex(part, "@"); at > 0 {
			sub := strings.Join(parts[i+1:], "/")
			mod := strings.TrimSuffix(importPath, "/"+sub)
			if sub == "" {
				mod = importPath
			}
			link := "https://pkg.go.dev/" + mod + "@" + part[at+1:]
			if sub != "" {
				link += "/" + sub
			}
			return link
		}
	}
	return "https://pkg.go.dev/" + importPath
}
