package docs

import (
	"cmp"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// repoURL is site/hugo.toml's params.repoURL: links that leave docs/ point
// at files of the repository there, which must exist in the checkout.
const repoURL = "https://github.com/stageset/stageset-controller"

// builtPage is one generated HTML page: the ids of its elements, its
// links (those of the navigation apart from the rest) and how many
// pictures (img, svg) it shows.
type builtPage struct {
	ids      map[string]bool
	nav      []htmlLink
	links    []htmlLink
	pictures int
}

type htmlLink struct {
	ref  string // the href or src as written
	text string // the link text or image alt
}

// parseSite reads every HTML page of the built site at dir, by URL path
// ("/" for index.html, "/concepts/stages/" for concepts/stages/index.html).
func parseSite(dir string) (map[string]*builtPage, error) {
	pages := map[string]*builtPage{}
	err := filepath.WalkDir(dir, func(file string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(file, ".html") {
			return err
		}
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			return err
		}
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		doc, err := html.Parse(f)
		if err != nil {
			return err
		}
		p := &builtPage{ids: map[string]bool{}}
		collect(doc, p, false)
		pages[urlPath(filepath.ToSlash(rel))] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pages, nil
}

func urlPath(rel string) string {
	if rel == "index.html" {
		return "/"
	}
	if strings.HasSuffix(rel, "/index.html") {
		return "/" + strings.TrimSuffix(rel, "index.html")
	}
	return "/" + rel
}

// collect walks n, recording ids and links into p; inNav tells whether n is
// inside the <nav>.
func collect(n *html.Node, p *builtPage, inNav bool) {
	if n.Type == html.ElementNode {
		inNav = inNav || n.Data == "nav"
		if n.Data == "img" || n.Data == "svg" {
			p.pictures++
		}
		ref := ""
		for _, a := range n.Attr {
			switch {
			case a.Key == "id", a.Key == "name" && n.Data == "a":
				p.ids[a.Val] = true
			case a.Key == "href" && (n.Data == "a" || n.Data == "link"), a.Key == "src" && (n.Data == "img" || n.Data == "script"):
				ref = a.Val
			}
		}
		if ref != "" {
			l := htmlLink{ref: ref, text: strings.Join(strings.Fields(text(n)), " ")}
			if n.Data == "img" {
				l.text = attr(n, "alt")
			}
			if inNav {
				p.nav = append(p.nav, l)
			} else {
				p.links = append(p.links, l)
			}
		}
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		collect(c, p, inNav)
	}
}

func text(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(text(c))
	}
	return b.String()
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// sources maps the URL path of each page to its Markdown file under docs/,
// for messages.
func sources(t *testing.T) map[string]string {
	m := map[string]string{}
	for _, rel := range markdownPages(t) {
		m[pageURL(rel)] = "docs/" + rel
	}
	return m
}

// resolve returns what a link of the page at from points to: the URL path
// and fragment of a page or file of the site, or local=false for a link
// that leaves the site.
func resolve(from, ref string) (target, fragment string, local bool, err error) {
	u, err := url.Parse(ref)
	if err != nil {
		return "", "", false, err
	}
	if u.Scheme != "" || u.Host != "" {
		return ref, "", false, nil
	}
	base := &url.URL{Path: from}
	r := base.ResolveReference(u)
	return r.Path, r.Fragment, true, nil
}

// checkLink returns what is wrong with a link of the page at from, or "".
func checkLink(dir string, pages map[string]*builtPage, from string, l htmlLink) string {
	target, fragment, local, err := resolve(from, l.ref)
	switch {
	case err != nil:
		return err.Error()
	case !local:
		return checkRepoLink(l.ref)
	}
	page := pages[target]
	if page == nil && !strings.HasSuffix(target, "/") {
		if page = pages[target+"/"]; page == nil {
			if info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(target))); err != nil || info.IsDir() {
				return "no such page or file in the site"
			}
		}
	}
	if page == nil && strings.HasSuffix(target, "/") {
		return "no such page in the site"
	}
	if fragment != "" {
		if page == nil {
			return "an anchor into a file that is not a page"
		}
		if !page.ids[fragment] {
			return "the page has no heading or element with id \"" + fragment + "\""
		}
	}
	return ""
}

// checkRepoLink checks a link into this repository on GitHub (one that
// leaves docs/, or the "View this page on GitHub" link): the file must
// exist in the checkout. Other external links are not fetched.
func checkRepoLink(ref string) string {
	for _, kind := range []string{"/blob/main/", "/tree/main/"} {
		prefix := repoURL + kind
		if rel, ok := strings.CutPrefix(ref, prefix); ok {
			rel, _, _ = strings.Cut(rel, "#")
			rel, _, _ = strings.Cut(rel, "?")
			if _, err := os.Stat(filepath.Join(root(), filepath.FromSlash(rel))); err != nil {
				return "no file " + rel + " in the repository"
			}
		}
	}
	return ""
}

func TestEveryLinkAndAnchorResolves(t *testing.T) {
	s := site(t)
	pages := s.parsedPages(t)
	src := sources(t)
	home := pages["/"]
	if home == nil {
		t.Fatal("the site has no home page (docs/_index.md)")
	}
	// The navigation is the same on every page: checked once, on the home
	// page.
	for _, l := range home.nav {
		if problem := checkLink(s.dir, pages, "/", l); problem != "" {
			t.Errorf("navigation (site/data/nav.yaml): link %q to %s: %s", l.text, l.ref, problem)
		}
	}
	for _, from := range slices.Sorted(maps.Keys(pages)) {
		for _, l := range pages[from].links {
			if problem := checkLink(s.dir, pages, from, l); problem != "" {
				t.Errorf("%s (page %s): link %q to %s: %s", cmp.Or(src[from], "site layout"), from, l.text, l.ref, problem)
			}
		}
	}
}

func TestEveryPageIsBuiltAndInTheNavigation(t *testing.T) {
	s := site(t)
	pages := s.parsedPages(t)
	home := pages["/"]
	if home == nil {
		t.Fatal("the site has no home page (docs/_index.md)")
	}
	if len(home.nav) < 10 {
		t.Fatalf("the home page's navigation has %d links; site/data/nav.yaml lists every page", len(home.nav))
	}
	// Reachable: named in the navigation, or linked (at any depth) from a
	// page that is.
	reached := map[string]bool{}
	var queue []string
	visit := func(from string, links []htmlLink) {
		for _, l := range links {
			target, _, local, err := resolve(from, l.ref)
			if err != nil || !local || reached[target] || pages[target] == nil {
				continue
			}
			reached[target] = true
			queue = append(queue, target)
		}
	}
	visit("/", home.nav)
	for len(queue) > 0 {
		from := queue[0]
		queue = queue[1:]
		visit(from, pages[from].links)
	}
	config, err := os.ReadFile(filepath.Join(root(), "site", "hugo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range markdownPages(t) {
		u := pageURL(rel)
		switch {
		case path.Base(rel) == "README.md" && !strings.Contains(string(config), `source = "../docs/`+rel+`"`):
			t.Errorf("docs/%s: site/hugo.toml does not mount it as its folder's _index.md (as it does runbooks/README.md), so the site would show it as a page named readme", rel)
		case pages[u] == nil:
			t.Errorf("docs/%s is not a page of the built site (no %s)", rel, u)
		case !reached[u]:
			t.Errorf("docs/%s is not reachable from the navigation: list it in site/data/nav.yaml or link it from a page that is", rel)
		}
	}
}

func TestPageURL(t *testing.T) {
	for rel, want := range map[string]string{
		"_index.md":           "/",
		"api.md":              "/api/",
		"runbooks/README.md":  "/runbooks/",
		"concepts/stages.md":  "/concepts/stages/",
		"dev/Architecture.md": "/dev/architecture/",
	} {
		if got := pageURL(rel); got != want {
			t.Errorf("pageURL(%q) = %q, want %q", rel, got, want)
		}
	}
}
