// Command apidocs writes the API reference, docs/reference/api.md, from the
// Go doc comments and kubebuilder markers of api/v1: one section per type
// reachable from StageSet, in the order they are reached, with a table of
// its fields, then the types it uses from other packages, then the Ready and
// event reasons. `make docs` runs it; `make generate` too, so the staleness
// check of `make test` covers the reference with the CRD it matches.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stageset/stageset-controller/internal/runbook"
)

const (
	apiImportPath = "github.com/stageset/stageset-controller/api/v1"
	apiDir        = "api/v1"
	rootKind      = "StageSet"
	runbookDir    = "docs/runbooks"
	// defaultOutput is where the reference is committed.
	defaultOutput = "docs/reference/api.md"
)

func main() {
	root := flag.String("root", ".", "the repository root")
	output := flag.String("output", defaultOutput, "the file to write, relative to -root; - for standard output")
	flag.Parse()
	out, err := generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
	if *output == "-" {
		fmt.Print(out)
		return
	}
	path := filepath.Join(*root, *output)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		err = os.WriteFile(path, []byte(out), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
}

// generate returns the reference for the repository at root.
func generate(root string) (string, error) {
	m, err := load(root)
	if err != nil {
		return "", err
	}
	return render(m), nil
}

// load reads api/v1 and the packages its types use into the model.
func load(root string) (*model, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	l := newLoader(root)
	api, err := l.loadDir(apiImportPath, filepath.Join(root, apiDir))
	if err != nil {
		return nil, err
	}
	m, err := buildModel(l, api, rootKind)
	if err != nil {
		return nil, err
	}
	m.Runbooks = map[string]bool{}
	for _, g := range m.Reasons {
		for _, c := range g.Consts {
			name := filepath.Join(root, runbookDir, runbook.Page(c.Value)+".md")
			if _, err := os.Stat(name); err == nil {
				m.Runbooks[c.Value] = true
			}
		}
	}
	return m, nil
}
