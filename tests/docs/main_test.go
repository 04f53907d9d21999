// Package docs tests the documentation site (site/, whose pages are the
// Markdown under docs/): that Hugo builds it without warnings, that every
// internal link and anchor of the built pages resolves, that every page
// under docs/ is built and reachable from the navigation, that every
// StageSet example in docs/ is accepted by the API server, and that
// Chromium renders the home page and a concept page with its diagrams.
//
// Hugo and Chromium are Debian packages (apt-get install hugo chromium).
// Where one is missing the tests that need it skip and say so, unless
// STAGESET_REQUIRE_DOCS_TOOLS=1 (set by .ci/run) makes that a failure.
package docs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stageset/stageset-controller/internal/testenv"
)

var (
	env *testenv.Environment
	// scratch holds the built site; removed when the package's tests end.
	scratch string
)

func TestMain(m *testing.M) {
	var err error
	if scratch, err = os.MkdirTemp("", "stageset-site-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := testenv.Run(m, &env)
	_ = os.RemoveAll(scratch)
	os.Exit(code)
}

// requireToolsEnv turns a missing Hugo or Chromium into a failure.
const requireToolsEnv = "STAGESET_REQUIRE_DOCS_TOOLS"

// requireTool returns the path of the program name, or skips the test (fails
// it under STAGESET_REQUIRE_DOCS_TOOLS=1) with how to install it.
func requireTool(t *testing.T, name, what string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s is not installed, so %s is not tested: install it with `apt-get install %s` (Debian), or run `bash .ci/run`, which does", name, what, name)
	if os.Getenv(requireToolsEnv) == "1" {
		t.Fatalf("%s (and %s=1 requires it)", msg, requireToolsEnv)
	}
	t.Skipf("%s; %s=1 turns this skip into a failure", msg, requireToolsEnv)
	return ""
}

// root is the checkout the tests read docs/ and site/ from.
func root() string { return testenv.RepoRoot() }

// built is the site as `make docs-site` builds it: its folder and Hugo's
// output, and its HTML pages parsed (or why they could not be), which the
// tests only read.
type built struct {
	dir      string
	output   string
	pages    map[string]*builtPage
	pagesErr error
}

var buildOnce = sync.OnceValues(func() (*built, error) {
	dir := filepath.Join(scratch, "public")
	cmd := exec.Command("hugo", "--source", filepath.Join(root(), "site"), "--destination", dir,
		"--cleanDestinationDir", "--noBuildLock", "--printPathWarnings", "--cacheDir", filepath.Join(scratch, "cache"))
	// Hugo's generated resources go to the scratch folder, not site/.
	cmd.Env = append(os.Environ(), "HUGO_RESOURCEDIR="+filepath.Join(scratch, "resources"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("hugo: %w\n%s", err, out.String())
	}
	pages, err := parseSite(dir)
	return &built{dir: dir, output: out.String(), pages: pages, pagesErr: err}, nil
})

// site builds the site once for the package and returns it; it skips when
// Hugo is missing.
func site(t *testing.T) *built {
	t.Helper()
	requireTool(t, "hugo", "the documentation site")
	s, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// parsedPages returns the HTML pages of the built site, by URL path (see
// parseSite); it fails the test when they could not be read.
func (s *built) parsedPages(t *testing.T) map[string]*builtPage {
	t.Helper()
	if s.pagesErr != nil {
		t.Fatal(s.pagesErr)
	}
	return s.pages
}

func TestSiteBuildsWithoutWarnings(t *testing.T) {
	s := site(t)
	for _, line := range strings.Split(s.output, "\n") {
		if strings.HasPrefix(line, "WARN") || strings.HasPrefix(line, "ERROR") {
			t.Errorf("hugo: %s", line)
		}
	}
}

// markdownPages returns the Markdown files under docs/, relative to docs/
// with forward slashes.
func markdownPages(t *testing.T) []string {
	t.Helper()
	docs := filepath.Join(root(), "docs")
	var pages []string
	err := filepath.WalkDir(docs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".md") {
			return err
		}
		rel, err := filepath.Rel(docs, path)
		pages = append(pages, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages
}

// pageURL is the URL path Hugo gives the page docs/<rel>: the folder's
// page for _index.md and README.md (site/hugo.toml mounts a README.md as
// its folder's _index.md), else the file's path without .md, lower-cased.
func pageURL(rel string) string {
	dir, file := path.Dir("/"+strings.ToLower(rel)), path.Base(rel)
	if file == "_index.md" || file == "README.md" {
		return strings.TrimSuffix(dir, "/") + "/"
	}
	return path.Join(dir, strings.TrimSuffix(strings.ToLower(file), ".md")) + "/"
}
