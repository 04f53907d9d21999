package main

// The names the code defines, against which docs_promises_test.go checks
// the pages: flags, commands, make targets, reasons, kinds, alerts and
// metrics, each read from where the code declares it.

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/stageset/stageset-controller/internal/cli"
	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/scheme"
)

// sharedDocNames loads the names once for the package's tests: a load
// parses every Go file of the repository. The tests only read them.
var sharedDocNames = sync.OnceValues(loadDocNames)

func loadDocNames() (*docNames, error) {
	n := &docNames{
		cliFlags: map[string]bool{}, localrun: map[string]bool{}, makeTargets: map[string]bool{},
		names: map[string]bool{}, metrics: map[string]bool{},
	}

	// The long flags of any stagesetctl command, with the help flag cobra
	// adds when run.
	walkCommands(cli.NewRootCommand(io.Discard), func(c *cobra.Command) { // runbooks_test.go
		c.InitDefaultHelpFlag()
		for _, fs := range []*flag.FlagSet{c.Flags(), c.InheritedFlags()} {
			fs.VisitAll(func(f *flag.Flag) { n.cliFlags[f.Name] = true })
		}
	})

	// make run passes RUN_ARGS to hack/localrun, a main package: its flags
	// are read from the flag.X("name", ...) calls of its source.
	localrunFiles, err := goFiles("hack/localrun")
	if err != nil {
		return nil, err
	}
	for _, file := range localrunFiles {
		f, err := parseGo(file)
		if err != nil {
			return nil, err
		}
		ast.Inspect(f, func(node ast.Node) bool {
			call, ok := node.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != "flag" {
				return true
			}
			i := 0
			if strings.HasSuffix(sel.Sel.Name, "Var") {
				i = 1
			}
			if i < len(call.Args) {
				if lit, ok := call.Args[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					name, _ := strconv.Unquote(lit.Value)
					n.localrun[name] = true
				}
			}
			return true
		})
	}
	if len(n.localrun) == 0 {
		return nil, errors.New("found no flag of hack/localrun: does it still register them with flag.X(\"name\", ...)?")
	}
	n.localrun["help"], n.localrun["h"] = true, true

	// make targets: rule lines of the Makefile (not variable assignments,
	// not pattern or variable targets).
	makefile, err := os.ReadFile("Makefile")
	if err != nil {
		return nil, err
	}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z0-9][A-Za-z0-9_.-]*(?:[ \t]+[A-Za-z0-9][A-Za-z0-9_.-]*)*)[ \t]*::?(?:[^=]|$)`).FindAllStringSubmatch(string(makefile), -1) {
		for _, target := range strings.Fields(m[1]) {
			n.makeTargets[target] = true
		}
	}

	// The files of api/v1 and internal/controller, parsed once: the
	// reasons, the names and the API's values below are read from them.
	apiFiles, err := goFiles("api/v1")
	if err != nil {
		return nil, err
	}
	controllerFiles, err := goFiles("internal/controller")
	if err != nil {
		return nil, err
	}
	parsed := map[string]*ast.File{}
	var reasonFiles []*ast.File
	for _, file := range append(slices.Clone(apiFiles), controllerFiles...) {
		f, err := parseGo(file)
		if err != nil {
			return nil, err
		}
		parsed[file] = f
		reasonFiles = append(reasonFiles, f)
	}

	// Reasons: the *Reason constants of the API and the controller, and
	// the fluxcd/pkg/apis/meta reasons the controller's code sets.
	n.reasons = reasonConstantsIn(reasonFiles...)
	for _, r := range fluxMetaReasons {
		n.reasons[r] = true
	}
	for r := range n.reasons {
		n.names[r] = true
	}

	// Names: kinds the controller knows, every exported name of the
	// repository's Go code (api/v1 types among them, and the Go names the
	// developer pages cite), the API's string values and enums and the
	// external types its fields use.
	for gvk := range scheme.New().AllKnownTypes() {
		n.names[gvk.Kind] = true
	}
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(p, ".go") {
			f, ok := parsed[p]
			if !ok {
				var err error
				if f, err = parseGo(p); err != nil {
					return err
				}
			}
			for _, name := range goNames(f, strings.HasSuffix(p, "_test.go")) {
				n.names[name] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, file := range apiFiles {
		f := parsed[file]
		ast.Inspect(f, func(node ast.Node) bool {
			switch x := node.(type) {
			case *ast.BasicLit:
				if x.Kind == token.STRING {
					v, _ := strconv.Unquote(x.Value)
					n.names[v] = true
				}
			case *ast.SelectorExpr:
				n.names[x.Sel.Name] = true
			}
			return true
		})
		src, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		for _, m := range regexp.MustCompile(`\+kubebuilder:validation:Enum=(\S+)`).FindAllStringSubmatch(string(src), -1) {
			for _, v := range strings.Split(m[1], ";") {
				n.names[v] = true
			}
		}
	}
	// kstatus, which tree --health and the health gates show.
	for _, s := range []status.Status{status.InProgressStatus, status.FailedStatus, status.CurrentStatus,
		status.TerminatingStatus, status.NotFoundStatus, status.UnknownStatus} {
		n.names[s.String()] = true
	}
	// The pod security settings docs/install.md and docs/security.md cite.
	n.names[string(corev1.SeccompProfileTypeRuntimeDefault)] = true
	// Alerts: the PrometheusRule of the chart (and any other under config/).
	err = filepath.WalkDir("config", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range regexp.MustCompile(`(?m)^\s*-?\s*alert:\s*"?(\w+)`).FindAllStringSubmatch(string(src), -1) {
			n.names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name := range foreignNames {
		n.names[name] = true
	}

	// Metrics: ours as internal/metrics describes them, and the series the
	// kube-state-metrics config makes of StageSets.
	for _, name := range metrics.Default().Names() {
		n.metrics[name] = true
	}
	ksm, err := os.ReadFile("config/monitoring/kube-state-metrics/stageset.yaml")
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Spec struct {
			Resources []struct {
				MetricNamePrefix string `json:"metricNamePrefix"`
				Metrics          []struct {
					Name string `json:"name"`
				} `json:"metrics"`
			} `json:"resources"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(ksm, &cfg); err != nil {
		return nil, err
	}
	for _, r := range cfg.Spec.Resources {
		for _, m := range r.Metrics {
			n.metrics[r.MetricNamePrefix+"_"+m.Name] = true
		}
	}
	return n, nil
}

func parseGo(file string) (*ast.File, error) {
	return parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
}

// goFiles lists the non-test Go files of a directory.
func goFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(files, func(f string) bool { return strings.HasSuffix(f, "_test.go") }), nil
}

var testFunc = regexp.MustCompile(`^(Test|Fuzz|Benchmark)`)

// goNames lists the exported top-level names a file declares, its methods
// and the values of its string constants; of a test file, its tests,
// fuzz targets and benchmarks only.
func goNames(f *ast.File, test bool) []string {
	var out []string
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !test || d.Recv == nil && testFunc.MatchString(d.Name.Name) {
				out = append(out, d.Name.Name)
			}
		case *ast.GenDecl:
			if test {
				continue
			}
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					out = append(out, s.Name.Name)
				case *ast.ValueSpec:
					for i, name := range s.Names {
						out = append(out, name.Name)
						if lit, ok := valueAt(s, i).(*ast.BasicLit); ok && d.Tok == token.CONST && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							out = append(out, v)
						}
					}
				}
			}
		}
	}
	return slices.DeleteFunc(out, func(name string) bool { return !ast.IsExported(name) })
}

func valueAt(s *ast.ValueSpec, i int) ast.Expr {
	if i < len(s.Values) {
		return s.Values[i]
	}
	return nil
}

// fluxMetaReasons are the fluxcd/pkg/apis/meta reasons the controller
// sets (`grep -rn 'meta\.\w*Reason' --include=*.go` outside tests).
var fluxMetaReasons = []string{meta.ProgressingReason, meta.ProgressingWithRetryReason, meta.SucceededReason}

// registeredMetric tells whether a collector of that series is registered
// on controller-runtime's registry, the one /metrics serves: the registry
// refuses a second descriptor of the same fully-qualified name. The
// controller_runtime_*, workqueue_*, rest_client_* and leader_election_*
// collectors are registered by controller-runtime's packages at init, series
// or not.
func registeredMetric(name string) (bool, error) {
	probe := probeCollector{prometheus.NewDesc(name, "probe of docs_promises_test.go", nil, nil)}
	err := ctrlmetrics.Registry.Register(probe)
	if err == nil {
		ctrlmetrics.Registry.Unregister(probe)
		return false, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) || strings.Contains(err.Error(), "same fully-qualified name") {
		return true, nil
	}
	return false, fmt.Errorf("probing the registry: %w", err)
}

// metricExists tells whether a series of that name is exported; the
// _bucket, _sum and _count series are their histogram's.
func (n *docNames) metricExists(name string) (bool, error) {
	for _, base := range []string{name, strings.TrimSuffix(name, "_bucket"), strings.TrimSuffix(name, "_sum"), strings.TrimSuffix(name, "_count")} {
		if strings.HasPrefix(base, "stageset_") || strings.HasPrefix(base, "gotk_") {
			if n.metrics[base] {
				return true, nil
			}
			continue
		}
		if ok, err := registeredMetric(base); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

type probeCollector struct{ desc *prometheus.Desc }

func (p probeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

func (p probeCollector) Collect(chan<- prometheus.Metric) {}
