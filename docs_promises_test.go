package main

import (
	"errors"
	goflag "flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"

	"github.com/stageset/stageset-controller/internal/testenv/markdown"
)

// No page promises a feature that does not exist: every flag, command,
// make target, reason and metric that README.md and docs/**/*.md name
// exists in the code today. One line per broken promise, with file:line.
func TestDocsPromiseOnlyWhatExists(t *testing.T) {
	names, err := sharedDocNames()
	if err != nil {
		t.Fatal(err)
	}
	pages := []string{"README.md"}
	err = filepath.WalkDir("docs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			pages = append(pages, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, page := range pages {
		content, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		problems, n := names.check(filepath.ToSlash(page), string(content))
		checked += n
		for _, p := range problems {
			t.Error(p)
		}
	}
	t.Logf("%d flags, commands, reasons and metrics checked in %d pages", checked, len(pages))
	// The pages name hundreds of these today: far fewer means the scan
	// broke, not that the docs became careful.
	if checked < 300 {
		t.Errorf("only %d flags, commands, reasons and metrics found in %d pages: is the Markdown scan broken?", checked, len(pages))
	}
}

// The checker finds each kind of false promise, at its line, and takes
// the flags and names of other tools for what they are.
func TestDocPromiseCheckerOnSyntheticPages(t *testing.T) {
	names, err := sharedDocNames()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, doc string
		want      []string // one problem per entry, in order, each containing the string
	}{{
		name: "existing flags, commands, targets, reasons and metrics",
		doc: "Run `stagesetctl reconcile shop -n apps --force` or `flux stageset get -A -o wide`;\n" +
			"`kubectl stageset tree shop --health`, `stagesetctl suspend --all`, `stagesetctl --help`.\n" +
			"The controller takes `--concurrent=8` and `--kubeconfig`; `-n/--namespace` and `--with-source`\n" +
			"are the CLI's; `make run RUN_ARGS='--source-dir ./x --watch'`, then `make cli`.\n" +
			"Ready is `StageFailed` or `ProgressingWithRetry` (Reconciling); `MigrationChanged` is an event;\n" +
			"`ConfigMap`, `GitRepository`, `StageSetSpec`, `MirrorPrune`, `IfNotPresent`, `InProgress`, `StageSetReconcileErrorsHigh`.\n" +
			"`sum(rate(stageset_reconcile_total[5m]))`, `gotk_reconcile_duration_seconds_bucket`, `workqueue_depth`,\n" +
			"`controller_runtime_reconcile_time_seconds_bucket`, `gotk_resource_info`; files stageset_run.go and config/samples/stageset_shop.yaml.\n" +
			"\n```sh\n$ stagesetctl build -f deploy/stageset.yaml --path . \\\n    --stage db --show-secrets\n" +
			"bin/stageset-controller --watch-all-namespaces=false --enable-webhook=false 2>&1 | tee log\n" +
			"kubectl annotate --overwrite stageset/shop reconcile.fluxcd.io/requestedAt=\"$(date +%s)\"\n" +
			"go run . --concurrent=2\ngo run ./cmd/stagesetctl get -A\nstagesetctl completion bash > /etc/bash_completion.d/stagesetctl\n```\n" +
			"\n```\nLAST SEEN  TYPE     REASON       OBJECT        MESSAGE\n2m         Warning  StageFailed  StageSet/app  stage app failed\n```\n" +
			"\n```yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stageset-controller\nspec:\n  template:\n" +
			"    spec:\n      containers:\n      - name: manager\n        args:\n        - --concurrent=10\n        - \"--watch-label-selector=shard=a\"\n```\n" +
			"\n```yaml\nstatus:\n  conditions:\n  - type: Ready\n    reason: RolledBack\n```\n",
	}, {
		name: "flags, commands and targets that do not exist",
		doc: "Use `stagesetctl rollback shop` and `flux stageset get --bogus`.\n" +
			"\n`kubectl stageset reconcile shop --dry-run` then `make docs-nowhere`.\n" +
			"```sh\nstagesetctl reconcile shop \\\n  --wait\nbin/stageset-controller --concurrency=4\nmake run RUN_ARGS='--source-dir . --follow'\n" +
			"go run . --no-such-flag\nflux suspend stageset shop\n```\n" +
			"Prose: `--frobnicate` does it.\n" +
			"```yaml\nkind: Deployment\nmetadata:\n  name: stageset-controller\nspec:\n  args:\n  - --requeue-interval=1m\n```\n",
		want: []string{
			`:1: stagesetctl rollback shop: unknown command "rollback"`,
			":1: flux stageset get --bogus: unknown flag: --bogus",
			":3: kubectl stageset reconcile shop --dry-run: unknown flag: --dry-run",
			`:3: make has no target "docs-nowhere"`,
			":5: stagesetctl reconcile shop --wait: unknown flag: --wait",
			":7: stageset-controller: unknown flag: --concurrency",
			":8: make run (hack/localrun) has no flag --follow",
			":9: stageset-controller: unknown flag: --no-such-flag",
			":10: flux suspend has no StageSet kind",
			":12: --frobnicate is a flag of neither",
			":19: stageset-controller has no flag --requeue-interval",
		},
	}, {
		name: "reasons and metrics that do not exist",
		doc: "The run ends `HealthCheckFailed` (reason `StageFailed`).\n" +
			"Alert on `stageset_rollbacks_total` or `controller_runtime_reconcile_panics_count`.\n" +
			"```promql\nsum(stageset_stage_healthy{namespace=\"apps\"})\n```\n" +
			"```\nLAST SEEN  TYPE     REASON          OBJECT        MESSAGE\n1m         Warning  ApplyTimedOut   StageSet/app  stage app\n```\n" +
			"```yaml\nkind: StageSet\nstatus:\n  conditions:\n  - type: Ready\n    reason: Degraded\n```\n" +
			"Filter with `reason=Bogus`.\n" +
			"```console\n$ kubectl get events --field-selector involvedObject.kind=StageSet,reason=BogusTwo\n```\n",
		want: []string{
			":1: `HealthCheckFailed` is",
			":2: metric stageset_rollbacks_total is",
			":2: metric controller_runtime_reconcile_panics_count is",
			":4: metric stageset_stage_healthy is",
			":8: reason ApplyTimedOut is",
			":15: reason Degraded is",
			":17: reason Bogus is",
			":19: reason BogusTwo is",
		},
	}, {
		name: "other tools' flags and commands are theirs",
		doc: "`kubectl apply --server-side -k config/default`, `flux reconcile kustomization app --with-source`,\n" +
			"`helm install stageset-controller config/chart/stageset-controller --create-namespace`,\n" +
			"`docker build --build-arg VERSION=v1 .`, `--set rbac.clusterAdmin=false` (helm), `flux plugin install stageset`,\n" +
			"`kubectl get stagesets -A --watch-only`, `go test -run TestX ./...`, `hugo server --bind 127.0.0.1`.\n" +
			"`flux get kustomizations stageset-controller`.\n" +
			"```sh\nkubectl -n apps get stageset shop -o jsonpath='{.status}' --show-managed-fields\n" +
			"flux get kustomizations --all-namespaces --status-selector ready=false\n" +
			"helm upgrade --install x y --set a=b --wait\nmake -C other-repo whatever\n" +
			"STAGESET_BENCH_ARGS=--concurrency=4 go test ./tests/bench -bench . -benchtime=3x\n" +
			"hugo --minify --baseURL http://127.0.0.1/\nkubectl wait stageset/shop --for=condition=Ready --timeout=5m\n" +
			"$ kubectl -n shop get events --field-selector reason=FailedScheduling\n```\n" +
			"```yaml\n# a Flux controller's patch, not ours\nkind: Deployment\nmetadata:\n  name: kustomize-controller\nspec:\n  args:\n  - --no-remote-bases=true\n```\n" +
			"```yaml\nsteps:\n- run: kubectl apply --server-side -f x.yaml\n- run: |\n    stagesetctl diff shop --path .\n    helm lint --strict chart\n```\n",
	}, {
		name: "a table column about another tool is that tool's",
		doc: "| | StageSet | Helm hooks | Argo CD |\n|---|---|---|---|\n" +
			"| Rollback | `rollbackOnFailure`, `RolledBack` | `--atomic`, `HookSucceeded` | `PreSync`, `OutOfSync` |\n" +
			"| CLI | `stagesetctl history` | `helm history --max 5` | `stagesetctl undo` |\n" +
			"| Bad | `--atomic`, `HookSucceeded` | | |\n" +
			"\nAfter the table, `OutOfSync` is ours again.\n",
		want: []string{
			`:4: stagesetctl undo: unknown command "undo"`,
			":5: `HookSucceeded` is",
			":5: --atomic is a flag of neither",
			":7: `OutOfSync` is",
		},
	}, {
		name: "shell steps in YAML are commands",
		doc:  "```yaml\njobs:\n  diff:\n    steps:\n    - run: stagesetctl diff shop --context-lines 5\n    - run: |\n        make lint-everything\n```\n",
		want: []string{
			":5: stagesetctl diff shop --context-lines 5: unknown flag: --context-lines",
			`:7: make has no target "lint-everything"`,
		},
	}, {
		name: "commands in blocks give their arguments; console output is no command",
		doc: "`stagesetctl reconcile` forces a run; `stagesetctl get <name>` shows one.\n" +
			"```sh\nstagesetctl reconcile\nstagesetctl tree <name> --health\nstagesetctl get $NAME -n \"$NS\" -o yaml\n```\n" +
			"```console\n$ stagesetctl get a b\n$ stagesetctl diff shop \\\n    --bogus\nstagesetctl frobnicate --output-only\n```\n" +
			"```sh\ncat <<EOF\nstagesetctl frobnicate\nEOF\n```\n",
		want: []string{
			":3: stagesetctl reconcile: accepts 1 arg(s), received 0",
			":8: stagesetctl get a b:",
			":9: stagesetctl diff shop --bogus: unknown flag: --bogus",
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			problems, checked := names.check("page.md", c.doc)
			if checked == 0 {
				t.Errorf("nothing checked")
			}
			for i, want := range c.want {
				if i >= len(problems) || !strings.Contains(problems[i], want) {
					t.Errorf("problem %d: want one containing %q; got:\n%s", i, want, strings.Join(problems, "\n"))
					return
				}
			}
			if len(problems) != len(c.want) {
				t.Errorf("want %d problems, got %d:\n%s", len(c.want), len(problems), strings.Join(problems, "\n"))
			}
		})
	}
}

// docNames are the names the code defines, which pages may promise.
type docNames struct {
	cliFlags    map[string]bool // the long flags of any stagesetctl command
	localrun    map[string]bool // make run RUN_ARGS=... (hack/localrun)
	makeTargets map[string]bool
	// reasons are the Ready, Reconciling and event reasons the controller
	// sets; names are the other CamelCase names a page may write in
	// backticks (kinds, API values, Go names, alerts, kstatus).
	reasons, names map[string]bool
	// metrics are the stageset_* and gotk_* series of internal/metrics and
	// of the kube-state-metrics config; others are asked of the registry.
	metrics map[string]bool
}

// Flags in prose, not written with a command, must be a flag of the
// controller, of a stagesetctl command or of `make run`, or one of these
// flags of other tools that pages mention on their own.
var foreignProseFlags = map[string]string{
	"set":                               "helm install/upgrade --set, for chart values (docs/install.md)",
	"custom-resource-state-config-file": "kube-state-metrics, loading config/monitoring/kube-state-metrics (docs/install.md)",
	"embed-certs":                       "kubectl config set-cluster, writing a kubeconfig for spec.kubeConfig (docs/guides/multi-cluster.md)",
}

// CamelCase names pages write in backticks that come from outside this
// repository and from nothing the test can read them from.
var foreignNames = map[string]string{
	"ApplyAll":     "the apply call of fluxcd/pkg/ssa (docs/performance.md)",
	"ResourceList": "the input kind of kustomize KRM functions (docs/performance.md)",
	"SteadyState":  "BenchmarkSteadyState of tests/bench, by the short name docs/performance.md uses",
	// Flux kinds and values outside the controller's scheme, which the
	// comparisons and the migration guide set against StageSets.
	"HelmRelease":        "helm-controller's kind",
	"ResourceSet":        "the Flux Operator's kind",
	"WaitForTermination": "a deletionPolicy of Kustomizations that StageSets do not have",
}

// Programs whose flags and arguments are theirs: a command that runs one is
// not checked (a command of no program we know, such as an output line,
// is not either, unless it is a code span).
var foreignPrograms = map[string]bool{
	"kubectl": true, "flux": true, "helm": true, "go": true, "hugo": true, "docker": true, "podman": true,
	"git": true, "crane": true, "skopeo": true, "curl": true, "kind": true, "kustomize": true, "argocd": true,
	"kube-state-metrics": true, "chromium": true, "jq": true, "yq": true, "sh": true, "bash": true,
	"sed": true, "grep": true, "tar": true, "openssl": true, "cosign": true, "gh": true, "k3d": true,
	"minikube": true, "kube-apiserver": true, "etcd": true, "promtool": true, "kwok": true,
	"kubectl_complete-stageset": true, // takes the words to complete, not flags
}

var (
	// A CamelCase word alone in a code span: a reason, a kind, an alert...
	camelCase = regexp.MustCompile(`^[A-Z][a-z]+(?:[A-Z][a-z]+)+$`)
	// A reason as a field, label or selector value: reason: X, "reason":
	// "X", reason="X", reason=X.
	reasonField = regexp.MustCompile(`\b[Rr]eason"?\s*[:=]\s*"?([A-Z][A-Za-z]*)\b`)
	// A line of kubectl or stagesetctl events about a StageSet.
	eventLine = regexp.MustCompile(`\b(?:Normal|Warning)\s+([A-Z][A-Za-z]*)\s+(?:StageSet|stageset|stagesets\.stageset\.io)/`)
	// A metric of ours, of Flux's or of controller-runtime's; not a file
	// (stageset_run.go) or a path (config/samples/stageset_shop.yaml).
	metricName = regexp.MustCompile(`(?:^|[^A-Za-z0-9_/.-])((?:stageset|gotk|controller_runtime|workqueue|rest_client|leader_election|certwatcher)_[a-z0-9_]*[a-z0-9])(\.[A-Za-z]|[A-Za-z0-9_/-])?`)
	// A long flag in prose (`--path DIR`, `-n/--namespace`, `NAME|--all`).
	proseFlag = regexp.MustCompile(`(?:^|[^\w-])--([a-z][a-z0-9-]*[a-z0-9])`)
	// A long flag in a YAML list or value (args: [--x], - --x=1, value: --x).
	yamlFlag = regexp.MustCompile(`(?:^|[\s\[,"'])--([a-z][a-z0-9-]*[a-z0-9])`)
	yamlRun  = regexp.MustCompile(`^(\s*)(?:-\s+)?run:\s*(.*?)\s*$`)
	subWord  = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	shellVar = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)
	// A table header about another tool (Helm, Argo CD, Flux, Kustomizations),
	// as in docs/comparisons.md, unless it names StageSets.
	otherToolName = regexp.MustCompile(`(?i)helm|argo|flux|kustomization`)
)

// check returns the broken promises of a page, one line each as
// "path:line: what", and how many promises it checked.
//
// Rules, which decide whose flag a --flag is:
//   - Command text (a shell block, a `run:` step of a YAML block, a code
//     span) is parsed as shell into simple commands. A command run as
//     stagesetctl, flux-stageset, kubectl-stageset, `flux stageset`,
//     `kubectl stageset` or `go run ./cmd/stagesetctl` is parsed by the
//     CLI's cobra tree (checkStagesetctl: command, flags, and in blocks the
//     number of arguments); stageset-controller (any path) or `go run .` by
//     the controller's flag set; make must name existing targets, and with
//     `make run` RUN_ARGS flags of hack/localrun. Any other program's flags
//     are its own and not checked: kubectl, flux, helm, go, output lines...
//   - A code span that is no command and starts with no known foreign
//     program (a flag alone, `-n/--namespace`, `suspend NAME|--all`):
//     each --flag must be a flag of the controller, of some stagesetctl
//     command or of make run, or one of foreignProseFlags.
//   - A YAML block that names stageset-controller (the Deployment, its
//     container, a patch of it) or extraArgs (the chart's): its --flags are
//     the controller's. Other YAML blocks (another controller's patch, a
//     Job of a StageSet) are not checked.
//   - A span in a table column whose header names another tool (and not
//     StageSet) is that tool's: only commands of ours are checked in it.
//
// Reasons: a code span that is one CamelCase word of two humps or more
// must be a reason the controller sets or a name of the code (kind,
// API value, Go name, alert, kstatus) or of foreignNames; a reason written
// as a field or selector (`reason: X`, `reason=X`) in a span or in a block
// that mentions StageSets (but not on a line of another program about
// other objects, see foreignCommand), or in an event line about a
// StageSet, must be a reason the controller sets. Metrics: every stageset_*, gotk_*,
// controller_runtime_*, workqueue_*, rest_client_*, leader_election_* and
// certwatcher_* name anywhere on the page (a _bucket, _sum or _count
// suffix is the histogram's) must be exported.
func (n *docNames) check(page, content string) (problems []string, checked int) {
	type problem struct {
		line int
		msg  string
	}
	var found []problem
	report := func(line int, format string, args ...any) {
		found = append(found, problem{line, fmt.Sprintf(format, args...)})
	}
	type cmdText struct {
		line int
		text string
		// span: a code span, whose --flags are checked even when it runs
		// no program of ours; theirs: one in another tool's column.
		span, theirs bool
	}
	var cmds []cmdText
	var reasonLines []markdown.Span // text in which reason fields are checked

	spans, blocks := markdown.Read(content)
	for _, s := range spans {
		theirs := otherToolName.MatchString(s.Header) && !strings.Contains(strings.ToLower(s.Header), "stageset")
		cmds = append(cmds, cmdText{s.Line, s.Text, true, theirs})
		if theirs {
			continue // another tool's names and flags; our commands are still checked
		}
		reasonLines = append(reasonLines, s)
		if word := strings.TrimSpace(s.Text); camelCase.MatchString(word) {
			checked++
			if !n.names[word] {
				report(s.Line, "`%s` is no reason the controller sets, nor a kind, alert, API value or Go name of the code", word)
			}
		}
	}
	controller := controllerFlags()
	for _, b := range blocks {
		text := strings.Join(b.Lines, "\n")
		mentionsStageSets := strings.Contains(strings.ToLower(text), "stageset")
		switch {
		case b.Lang == "yaml" || b.Lang == "yml":
			shell := map[int]bool{}
			for i := 0; i < len(b.Lines); i++ {
				m := yamlRun.FindStringSubmatch(b.Lines[i])
				if m == nil {
					continue
				}
				if v := m[2]; strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">") {
					for j := i + 1; j < len(b.Lines); j++ {
						l := b.Lines[j]
						if strings.TrimSpace(l) != "" && len(l)-len(strings.TrimLeft(l, " ")) <= len(m[1]) {
							break
						}
						shell[j] = true
						cmds = append(cmds, cmdText{line: b.Line + j, text: l})
					}
				} else if v != "" {
					shell[i] = true
					if uq, err := strconv.Unquote(v); err == nil {
						v = uq
					} else if strings.HasPrefix(v, "'") && strings.HasSuffix(v, "'") && len(v) > 1 {
						v = v[1 : len(v)-1]
					}
					cmds = append(cmds, cmdText{line: b.Line + i, text: v})
				}
			}
			if strings.Contains(text, "stageset-controller") || strings.Contains(text, "extraArgs") {
				for i, l := range b.Lines {
					if shell[i] {
						continue
					}
					for _, m := range yamlFlag.FindAllStringSubmatch(l, -1) {
						checked++
						if controller.Lookup(m[1]) == nil {
							report(b.Line+i, "stageset-controller has no flag --%s", m[1])
						}
					}
				}
			}
		case shellLangs[b.Lang] || consoleLangs[b.Lang]:
			cmds = append(cmds, cmdText{line: b.Line, text: shellScript(b)})
		}
		for i, l := range b.Lines {
			if mentionsStageSets && !foreignCommand(l) {
				reasonLines = append(reasonLines, markdown.Span{Line: b.Line + i, Text: l})
			}
			for _, m := range eventLine.FindAllStringSubmatch(l, -1) {
				checked++
				if !n.reasons[m[1]] {
					report(b.Line+i, "reason %s is not one the controller sets", m[1])
				}
			}
		}
	}
	for _, l := range reasonLines {
		for _, m := range reasonField.FindAllStringSubmatch(l.Text, -1) {
			checked++
			if !n.reasons[m[1]] {
				report(l.Line, "reason %s is not one the controller sets", m[1])
			}
		}
	}

	for _, c := range cmds {
		for _, sc := range shellCommands(c.text) {
			line := c.line + sc.line - 1
			kind, prog, args := classify(sc.words)
			switch kind {
			case progCLI:
				if len(args) == 0 || args[0] == cobra.ShellCompRequestCmd {
					continue // the program's name, or the words to complete
				}
				checked++
				if err := n.checkCLI(args, !c.span); err != nil {
					report(line, "%s %s: %v", prog, strings.Join(args, " "), err)
				}
			case progController:
				checked++
				if err := controllerFlags().Parse(args); err != nil && !errors.Is(err, flag.ErrHelp) {
					report(line, "stageset-controller: %v", err)
				}
			case progMake:
				checked++
				for _, p := range n.checkMake(args) {
					report(line, "%s", p)
				}
			case progLocalrun:
				checked++
				for _, p := range n.checkLocalrun(args) {
					report(line, "%s", p)
				}
			case progForeign:
				// The flux CLI knows Flux's kinds only; StageSets are the
				// plugin's (flux stageset get, not flux get stageset).
				if path.Base(prog) == "flux" && len(args) > 1 && args[0] != "plugin" && (args[1] == "stageset" || args[1] == "stagesets") {
					report(line, "flux %s has no StageSet kind: the plugin's command is flux stageset %s", args[0], args[0])
				}
			case progUnknown:
				if !c.span || c.theirs {
					continue // an output line, a program of no interest, another tool's column
				}
				for _, w := range sc.words {
					for _, m := range proseFlag.FindAllStringSubmatch(w, -1) {
						checked++
						_, foreign := foreignProseFlags[m[1]]
						if !foreign && controller.Lookup(m[1]) == nil && !n.cliFlags[m[1]] && !n.localrun[m[1]] {
							report(line, "--%s is a flag of neither stageset-controller, stagesetctl nor make run (hack/localrun), nor one of foreignProseFlags", m[1])
						}
					}
				}
			}
		}
	}

	for i, l := range strings.Split(content, "\n") {
		for _, m := range metricName.FindAllStringSubmatch(l, -1) {
			if m[2] != "" {
				continue // a file name or a longer word
			}
			checked++
			if ok, err := n.metricExists(m[1]); err != nil {
				report(i+1, "metric %s: %v", m[1], err)
			} else if !ok {
				report(i+1, "metric %s is exported neither by internal/metrics, the kube-state-metrics config nor controller-runtime", m[1])
			}
		}
	}
	slices.SortStableFunc(found, func(a, b problem) int { return a.line - b.line })
	for _, p := range found {
		problems = append(problems, fmt.Sprintf("%s:%d: %s", page, p.line, p.msg))
	}
	return problems, checked
}

// foreignCommand tells a shell line that runs another program about
// other objects, such as `kubectl get events --field-selector
// reason=FailedScheduling` (a Pod's reason) in a session about a StageSet:
// its reason=X is not a StageSet's. A line that names StageSets is ours.
func foreignCommand(line string) bool {
	if strings.Contains(strings.ToLower(line), "stageset") {
		return false
	}
	for _, c := range shellCommands(prompt.ReplaceAllString(line, "")) {
		if kind, _, _ := classify(c.words); kind == progForeign {
			return true
		}
	}
	return false
}

// controllerFlags is the controller's flag set as main builds it: its
// options, and the standard flag set's --kubeconfig (controller-runtime's;
// in a test binary the test.* flags too, which no page names).
func controllerFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("stageset-controller", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	newOptions().bindFlags(fs)
	goflag.CommandLine.VisitAll(func(f *goflag.Flag) {
		if !strings.HasPrefix(f.Name, "test.") {
			fs.AddGoFlag(f)
		}
	})
	return fs
}

// checkCLI parses a stagesetctl command line with the CLI (checkStagesetctl,
// runbooks_test.go); a span names a command and need not give its
// arguments. Before a <command> placeholder, the flags of any command go.
func (n *docNames) checkCLI(args []string, countArgs bool) error {
	if i := slices.IndexFunc(args, func(a string) bool { return !strings.HasPrefix(a, "-") }); i >= 0 && isPlaceholder(args[i]) {
		for _, a := range args {
			if name, ok := strings.CutPrefix(a, "--"); ok && !n.cliFlags[strings.SplitN(name, "=", 2)[0]] {
				return fmt.Errorf("no command has the flag %s", a)
			}
		}
		return nil
	}
	return checkStagesetctl(args, countArgs)
}

// checkMake checks the targets of a make command line, and with make run
// the RUN_ARGS it passes to hack/localrun.
func (n *docNames) checkMake(args []string) []string {
	var out, targets []string
	runArgs, hasRunArgs := "", false
	for _, a := range args {
		switch {
		case a == "-C" || a == "-f" || strings.HasPrefix(a, "--directory") || strings.HasPrefix(a, "--file") || strings.HasPrefix(a, "--makefile"):
			return nil // another Makefile
		case strings.HasPrefix(a, "-"):
		case shellVar.MatchString(a):
			if v, ok := strings.CutPrefix(a, "RUN_ARGS="); ok {
				runArgs, hasRunArgs = v, true
			}
		case subWord.MatchString(a):
			targets = append(targets, a)
		case isPlaceholder(a) || a == "TARGET":
			// make <target>: a placeholder.
		default:
			return nil // "make run: file.yaml:14: ...": output, not a command
		}
	}
	for _, target := range targets {
		if !n.makeTargets[target] {
			out = append(out, fmt.Sprintf("make has no target %q (Makefile)", target))
		}
	}
	if hasRunArgs && slices.Contains(targets, "run") {
		out = append(out, n.checkLocalrun(strings.Fields(runArgs))...)
	}
	return out
}

// checkLocalrun checks flags of hack/localrun (Go's flag package: -name and
// --name alike).
func (n *docNames) checkLocalrun(args []string) []string {
	var out []string
	for _, a := range args {
		if a == "--" {
			break
		}
		if name := strings.TrimLeft(a, "-"); name != a && name != "" {
			if name = strings.SplitN(name, "=", 2)[0]; !n.localrun[name] {
				out = append(out, fmt.Sprintf("make run (hack/localrun) has no flag --%s", name))
			}
		}
	}
	return out
}
