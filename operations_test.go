package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/runbook"
)

// reasonConstants returns the values of the string constants named
// *Reason in the Go files given (Ready and event reasons).
func reasonConstants(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	var parsed []*ast.File
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed = append(parsed, f)
	}
	return reasonConstantsIn(parsed...)
}

// reasonConstantsIn returns the values of the string constants named
// *Reason in the parsed Go files given.
func reasonConstantsIn(files ...*ast.File) map[string]bool {
	out := map[string]bool{}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			spec, ok := n.(*ast.ValueSpec)
			if !ok {
				return true
			}
			for i, name := range spec.Names {
				if !strings.HasSuffix(name.Name, "Reason") || i >= len(spec.Values) {
					continue
				}
				if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					out[v] = true
				}
			}
			return true
		})
	}
	return out
}

// docs/operations.md names only flags the controller has (not the CLI's),
// and reasons, events and alerts it emits; and it names every stageset_*
// and gotk_* series and every reason. The metrics it names are checked,
// with those of every page, by TestDocsPromiseOnlyWhatExists.
func TestOperationsDocMatchesTheCode(t *testing.T) {
	g := NewWithT(t)
	doc, err := os.ReadFile("docs/operations.md")
	g.Expect(err).NotTo(HaveOccurred())
	text := string(doc)

	fs := controllerFlags()

	reasons := reasonConstants(t, "api/v1/condition_types.go", "internal/controller/stageset_migrations.go")
	words := map[string]bool{ // names that are neither reasons nor alerts
		"StageSet": true, "Alert": true, "Provider": true, "Receiver": true, "Ready": true, "Reconciling": true, "Stalled": true,
		"Enabled": true, "Warn": true, "Disabled": true, "StageSetReconcileErrorsHigh": true,
	}
	for _, a := range runbook.Alerts {
		words[a] = true
	}

	checked := 0
	for _, m := range regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(text, -1) {
		tok := m[1]
		switch {
		case strings.HasPrefix(tok, "--"):
			name := strings.SplitN(strings.TrimPrefix(tok, "--"), "=", 2)[0]
			g.Expect(fs.Lookup(name)).NotTo(BeNil(), "docs/operations.md names flag %s", tok)
		case strings.HasPrefix(tok, "Test"):
			continue // this test
		case regexp.MustCompile(`^[A-Z][A-Za-z]+$`).MatchString(tok):
			g.Expect(reasons[tok] || words[tok]).To(BeTrue(), "docs/operations.md names %s, no reason, event or alert", tok)
		default:
			continue
		}
		checked++
	}
	g.Expect(checked).To(BeNumerically(">", 30))

	// And it names everything an operator can meet.
	for _, name := range metrics.Default().Names() {
		g.Expect(text).To(ContainSubstring("`"+name+"`"), "metric %s is not documented", name)
	}
	for reason := range reasons {
		g.Expect(text).To(ContainSubstring("`"+reason+"`"), "reason %s is not documented", reason)
	}
	for _, alert := range append(slices.Clone(runbook.Alerts), "StageSetReconcileErrorsHigh") {
		g.Expect(text).To(ContainSubstring("`"+alert+"`"), "alert %s is not documented", alert)
	}
}
