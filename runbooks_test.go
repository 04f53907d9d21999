package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

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

// checkStagesetctl, with which TestDocsPromiseOnlyWhatExists checks every
// stagesetctl command of the runbooks (and of every other page), accepts
// the command lines a runbook writes and refuses the broken ones: a
// runbook read at 3 a.m. must not fail on a flag that does not exist.
func TestRunbookCommandsExist(t *testing.T) {
	for _, args := range [][]string{{"get", "-A"}, {"get", "shop", "-n", "apps", "-o", "yaml"}, {"-n", "apps", "get"}, {"get", "--help"}, {"version"}, {"reconcile", "shop", "--force", "--timeout", "15m"}, {"tree", "shop", "--health"}, {"diff", "shop", "--path", "."}, {"events", "shop", "-w"}} {
		if err := checkStagesetctl(args, true); err != nil {
			t.Errorf("stagesetctl %v is refused: %v", args, err)
		}
	}
	for _, args := range [][]string{{"get", "--fake"}, {"reconcile"}, {"reconcile", "shop", "--fake"}, {"frobnicate", "shop"}, {"tree"}, {"get", "a", "b"}, {"version", "-o", "yaml"}, {}} {
		if checkStagesetctl(args, true) == nil {
			t.Errorf("stagesetctl %v is accepted", args)
		}
	}
}

// checkStagesetctl tells whether the CLI accepts args as a command line: an
// existing subcommand, flags it (or a parent, persistently) defines, and,
// with countArgs, an argument count its Args accepts. Nothing is run.
func checkStagesetctl(args []string, countArgs bool) error {
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
	if !countArgs {
		return nil
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
