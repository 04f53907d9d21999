package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	fluxmetrics "github.com/fluxcd/pkg/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/cli"
	"github.com/stageset/stageset-controller/internal/runbook"
)

// runbookDir holds one page per actionable Ready reason and per alert that
// is not about a reason (SPEC §9), plus the README index.
const runbookDir = "docs/runbooks"

// quietReasons are the Ready reasons that call for no action: no page, no
// link.
var quietReasons = []string{stagesetv1.SucceededReason, stagesetv1.SuspendedReason, stagesetv1.ProgressingReason}

// runbookSections are the headings every page has, in this order.
var runbookSections = []string{"## What you see", "## Likely causes", "## Diagnose", "## Fix", "## Force a new attempt"}

// readyReasons parses api/v1/condition_types.go and returns the values of
// the constants of its "Ready reasons" block. Parsing the source, rather
// than listing the constants here, is what makes a new reason without a
// page fail: a list in this test would be forgotten with the page.
func readyReasons(t *testing.T) map[string]string {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "api/v1/condition_types.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]string{} // constant name → value
	for _, decl := range file.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		doc := ""
		if gen.Doc != nil {
			doc = gen.Doc.Text()
		}
		ready := strings.HasPrefix(doc, "Ready reasons")
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasSuffix(name.Name, "Reason") {
					continue
				}
				// A reason outside both reason blocks would escape this
				// test: it must be classified first.
				if !ready && !strings.HasPrefix(doc, "Event reasons") {
					t.Errorf("%s is in neither the Ready reasons nor the Event reasons block of condition_types.go", name.Name)
					continue
				}
				if !ready {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", name.Name)
				}
				value, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				reasons[name.Name] = value
			}
		}
	}
	if len(reasons) < len(quietReasons)+len(runbook.Reasons) {
		t.Fatalf("found %d Ready reasons in condition_types.go, fewer than the %d known: is the block still documented as \"Ready reasons\"?",
			len(reasons), len(quietReasons)+len(runbook.Reasons))
	}
	return reasons
}

// Every Ready reason calls for action (it has a page) or is one of the three
// that do not; and runbook.Reasons lists nothing that is not a Ready reason.
func TestRunbookForEveryReadyReason(t *testing.T) {
	reasons := readyReasons(t)
	values := map[string]bool{}
	for name, value := range reasons {
		values[value] = true
		if !slices.Contains(runbook.Reasons, value) && !slices.Contains(quietReasons, value) {
			t.Errorf("Ready reason %s (%q) is neither in runbook.Reasons nor one of %v: add it and its page %s/%s.md",
				name, value, quietReasons, runbookDir, runbook.Page(value))
		}
	}
	for _, r := range append(slices.Clone(runbook.Reasons), quietReasons...) {
		if !values[r] {
			t.Errorf("runbook.Reasons or the quiet reasons name %q, which is no Ready reason of condition_types.go", r)
		}
	}
}

// runbookPages returns the pages of docs/runbooks by file name, README.md
// excluded.
func runbookPages(t *testing.T) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(runbookDir)
	if err != nil {
		t.Fatal(err)
	}
	pages := map[string]string{}
	for _, e := range entries {
		if e.Name() == "README.md" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(runbookDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		pages[e.Name()] = string(data)
	}
	return pages
}

// Every reason and alert has its page with the sections of a runbook, the
// README indexes it, and no page is there for anything else.
func TestRunbookPages(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(runbookDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	pages := runbookPages(t)
	wanted := map[string]string{} // file name → reason or alert
	for _, name := range append(slices.Clone(runbook.Reasons), runbook.Alerts...) {
		wanted[runbook.Page(name)+".md"] = name
	}
	for file, name := range wanted {
		page, ok := pages[file]
		if !ok {
			t.Errorf("%s has no page %s/%s", name, runbookDir, file)
			continue
		}
		if title := strings.SplitN(page, "\n", 2)[0]; !strings.HasPrefix(title, "# ") || !strings.Contains(title, name) {
			t.Errorf("%s: the first line %q is not a title naming %s", file, title, name)
		}
		at := 0
		for _, section := range runbookSections {
			i := strings.Index(page[at:], "\n"+section+"\n")
			if i < 0 {
				t.Errorf("%s: no section %q after the ones before it", file, section)
				break
			}
			at += i + 1
		}
		if !strings.Contains(string(readme), "("+file+")") {
			t.Errorf("%s/README.md does not link %s", runbookDir, file)
		}
	}
	for file := range pages {
		if _, ok := wanted[file]; !ok {
			t.Errorf("%s/%s is the page of no Ready reason in runbook.Reasons and no alert in runbook.Alerts", runbookDir, file)
		}
	}
}

// Every stagesetctl command of a runbook's code blocks names a subcommand
// and flags the CLI has, with an argument count it accepts: a runbook read
// at 3 a.m. must not fail on a flag that does not exist.
func TestRunbookCommandsExist(t *testing.T) {
	for _, args := range [][]string{{"get", "-A"}, {"get", "shop", "-n", "apps", "-o", "yaml"}, {"-n", "apps", "get"}, {"get", "--help"}, {"version"}, {"reconcile", "shop", "--force", "--timeout", "15m"}, {"tree", "shop", "--health"}, {"diff", "shop", "--path", "."}, {"events", "shop", "-w"}} {
		if err := checkStagesetctl(args); err != nil {
			t.Errorf("stagesetctl %v is refused: %v", args, err)
		}
	}
	for _, args := range [][]string{{"get", "--fake"}, {"reconcile"}, {"reconcile", "shop", "--fake"}, {"frobnicate", "shop"}, {"tree"}, {"get", "a", "b"}, {"version", "-o", "yaml"}, {}} {
		if checkStagesetctl(args) == nil {
			t.Errorf("stagesetctl %v is accepted", args)
		}
	}
	files := append(slices.Sorted(maps.Keys(runbookPages(t))), "README.md")
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(runbookDir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range codeLines(string(data)) {
			for _, args := range stagesetctlCalls(line) {
				checked++
				if err := checkStagesetctl(args); err != nil {
					t.Errorf("%s: %q: %v", file, line, err)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no stagesetctl command found in the runbooks: the parser is broken")
	}
}

// Every controller flag a runbook names in its text (`--flag`) is a flag of
// the controller or of stagesetctl, and every stageset_* and gotk_* series
// it names is one the controller exports.
func TestRunbookNamesExist(t *testing.T) {
	flags := map[string]bool{}
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	newOptions().bindFlags(fs)
	fs.VisitAll(func(f *flag.Flag) { flags[f.Name] = true })
	walkCommands(cli.NewRootCommand(io.Discard), func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *flag.Flag) { flags[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *flag.Flag) { flags[f.Name] = true })
	})
	series := exportedSeries(t)

	inlineFlag := regexp.MustCompile("`--([a-z0-9-]+)")
	seriesName := regexp.MustCompile(`\b(?:stageset|gotk)_[a-z_]+\b`)
	files := append(slices.Sorted(maps.Keys(runbookPages(t))), "README.md")
	for _, file := range files {
		data, err := os.ReadFile(filepath.Join(runbookDir, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range inlineFlag.FindAllStringSubmatch(string(data), -1) {
			if !flags[m[1]] {
				t.Errorf("%s names --%s, which neither the controller nor stagesetctl has", file, m[1])
			}
		}
		for _, name := range seriesName.FindAllString(string(data), -1) {
			if !series[name] {
				t.Errorf("%s names the series %s, which the controller does not export", file, name)
			}
		}
	}
}

// exportedSeries returns the stageset_* and gotk_* series names the
// controller exports, histograms with their _bucket, _sum and _count series.
// The stageset_* names are read from internal/metrics, whose collectors are
// not exported; the gotk_* ones are fluxcd/pkg/runtime's.
func exportedSeries(t *testing.T) map[string]bool {
	t.Helper()
	src, err := os.ReadFile("internal/metrics/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]bool{}
	for _, m := range regexp.MustCompile(`Name:\s+"(stageset_\w+)"`).FindAllStringSubmatch(string(src), -1) {
		series[m[1]] = true
	}
	descs := make(chan *prometheus.Desc, 16)
	go func() {
		for _, c := range fluxmetrics.NewRecorder().Collectors() {
			c.Describe(descs)
		}
		close(descs)
	}()
	fqName := regexp.MustCompile(`fqName: "(\w+)"`)
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
				series[m[1]+suffix] = true
			}
		}
	}
	if len(series) < 8 {
		t.Fatalf("found only %d exported series: %v", len(series), series)
	}
	return series
}

// codeLines returns the lines of the fenced code blocks of a Markdown page,
// with backslash-continued lines joined.
func codeLines(page string) []string {
	var lines []string
	in := false
	pending := ""
	for _, line := range strings.Split(page, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			in = !in
			continue
		}
		if !in {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			pending += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		lines = append(lines, pending+line)
		pending = ""
	}
	return lines
}

// stagesetctlCalls returns the arguments of every stagesetctl call of a
// shell line: the words after "stagesetctl" up to the end of the simple
// command (a pipe, a list operator, a redirection, a closing parenthesis
// or a comment, outside quotes).
func stagesetctlCalls(line string) [][]string {
	words := shellWords(line)
	var calls [][]string
	for i, w := range words {
		if w != "stagesetctl" && !strings.HasSuffix(w, "/stagesetctl") {
			continue
		}
		var args []string
		for _, a := range words[i+1:] {
			if a == "" { // an operator
				break
			}
			args = append(args, a)
		}
		calls = append(calls, args)
	}
	return calls
}

// shellWords splits a shell line into words, quotes removed; each operator
// (| ; & > < ) #) outside quotes becomes an empty word.
func shellWords(line string) []string {
	var words []string
	var b strings.Builder
	inWord := false
	var quote rune
	flush := func() {
		if inWord {
			words = append(words, b.String())
		}
		b.Reset()
		inWord = false
	}
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				b.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case strings.ContainsRune("|;&<>)#", r):
			flush()
			words = append(words, "")
		case r == ' ' || r == '\t':
			flush()
		default:
			b.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return words
}

// checkStagesetctl tells whether the CLI accepts args as a command line: an
// existing subcommand, flags it (or a parent, persistently) defines, and an
// argument count its Args accepts. Nothing is run.
func checkStagesetctl(args []string) error {
	root := cli.NewRootCommand(io.Discard)
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	cmd.InitDefaultHelpFlag()
	if err := cmd.ParseFlags(rest); err != nil {
		return err
	}
	if help, _ := cmd.Flags().GetBool("help"); help {
		return nil
	}
	if cmd == root {
		return fmt.Errorf("no subcommand")
	}
	return cmd.ValidateArgs(cmd.Flags().Args())
}

// walkCommands calls fn on c and every command below it.
func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, fn)
	}
}
