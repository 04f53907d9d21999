package main

import (
	goflag "flag"
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
	flag "github.com/spf13/pflag"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/runbook"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// reasonConstants returns the values of the string constants named
// *Reason in the Go files given (Ready and event reasons).
func reasonConstants(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, file := range files {
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
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

// docs/operations.md names only flags the controller has, metrics it
// exports, and reasons and events it emits; and it names every stageset_*
// and gotk_* series and every reason.
func TestOperationsDocMatchesTheCode(t *testing.T) {
	g := NewWithT(t)
	doc, err := os.ReadFile("docs/operations.md")
	g.Expect(err).NotTo(HaveOccurred())
	text := string(doc)

	// Metrics: ours by their descriptions, controller-runtime's as a
	// running controller exports them.
	exported := map[string]bool{}
	for _, name := range metrics.Default().Names() {
		exported[name] = true
	}
	ns := env.NewNamespace(t)
	publishRepo(t, ns, "rev-1", map[string]string{"app/cm.yaml": appConfigMap("one")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
	g.Expect(env.Client.Create(t.Context(), obj)).To(Succeed())
	startController(t)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	// The reconcile that made it Ready observes its duration when it ends.
	g.Eventually(func() map[string]bool {
		families, err := ctrlmetrics.Registry.Gather()
		g.Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			exported[f.GetName()] = true
		}
		return exported
	}, testenv.Timeout, testenv.Poll).Should(HaveKey("controller_runtime_reconcile_time_seconds"))

	fs := flag.NewFlagSet("doc", flag.ContinueOnError)
	newOptions().bindFlags(fs)
	fs.AddGoFlagSet(goflag.CommandLine)

	reasons := reasonConstants(t, "api/v1/condition_types.go", "internal/controller/stageset_migrations.go")
	words := map[string]bool{ // names that are neither reasons nor alerts
		"StageSet": true, "Alert": true, "Provider": true, "Receiver": true, "Ready": true, "Reconciling": true, "Stalled": true,
		"Enabled": true, "Warn": true, "Disabled": true, "StageSetReconcileErrorsHigh": true,
	}
	for _, a := range runbook.Alerts {
		words[a] = true
	}

	tokens := regexp.MustCompile("`([^`\n]+)`").FindAllStringSubmatch(text, -1)
	metricName := regexp.MustCompile(`^(stageset|gotk|controller_runtime|workqueue)_[a-z_]+$`)
	checked := 0
	for _, m := range tokens {
		tok := m[1]
		switch {
		case strings.HasPrefix(tok, "--"):
			name := strings.SplitN(strings.TrimPrefix(tok, "--"), "=", 2)[0]
			g.Expect(fs.Lookup(name)).NotTo(BeNil(), "docs/operations.md names flag %s", tok)
		case metricName.MatchString(tok):
			g.Expect(exported).To(HaveKey(tok), "docs/operations.md names metric %s", tok)
		case strings.HasPrefix(tok, "Test"):
			continue // this test
		case regexp.MustCompile(`^[A-Z][A-Za-z]+$`).MatchString(tok):
			g.Expect(reasons[tok] || words[tok]).To(BeTrue(), "docs/operations.md names %s, no reason, event or alert", tok)
		default:
			continue
		}
		checked++
	}
	g.Expect(checked).To(BeNumerically(">", 50))

	// And it names everything an operator can meet.
	for name := range exported {
		if strings.HasPrefix(name, "stageset_") || strings.HasPrefix(name, "gotk_") {
			g.Expect(text).To(ContainSubstring("`"+name+"`"), "metric %s is not documented", name)
		}
	}
	for reason := range reasons {
		g.Expect(text).To(ContainSubstring("`"+reason+"`"), "reason %s is not documented", reason)
	}
	for _, alert := range append(slices.Clone(runbook.Alerts), "StageSetReconcileErrorsHigh") {
		g.Expect(text).To(ContainSubstring("`"+alert+"`"), "alert %s is not documented", alert)
	}
}
