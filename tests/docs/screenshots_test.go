package docs

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// diagramPage is the concept page whose diagrams the screenshot test
// checks Chromium renders (docs/<diagramPage>); it must show at least one.
const diagramPage = "concepts/stages.md"

// screenshotDir is where the screenshots are written, under the checkout.
const screenshotDir = "bin/site-screenshots"

// rendered is what the browser reports of one picture in the page's <main>.
type rendered struct {
	Tag    string  `json:"tag"`
	Src    string  `json:"src"`
	OK     bool    `json:"ok"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
}

// picturesJS lists the images and inline SVGs of the page's content with
// whether each rendered: an image loaded with a natural width and shown
// with a size, an SVG laid out with a size.
const picturesJS = `(() => {
  const out = [];
  const main = document.querySelector('main');
  if (!main) return out;
  for (const img of main.querySelectorAll('img')) {
    const r = img.getBoundingClientRect();
    out.push({tag: 'img', src: img.getAttribute('src') || '', ok: img.complete && img.naturalWidth > 0 && r.width > 0 && r.height > 0, width: r.width, height: r.height});
  }
  for (const svg of main.querySelectorAll('svg')) {
    if (svg.parentElement && svg.parentElement.closest('svg')) continue;
    const r = svg.getBoundingClientRect();
    out.push({tag: 'svg', src: svg.getAttribute('aria-label') || '', ok: r.width > 0 && r.height > 0, width: r.width, height: r.height});
  }
  return out;
})()`

// Chromium shows the home page with its navigation, the concept page
// diagramPage with at least one diagram, and every picture of every page
// rendered; the screenshots of the first two land in bin/site-screenshots/
// for a person to look at.
func TestScreenshotsShowTheHomePageAndTheDiagrams(t *testing.T) {
	s := site(t)
	chromium := requireTool(t, "chromium", "the rendering of the site in a browser")
	if _, err := os.Stat(filepath.Join(root(), "docs", filepath.FromSlash(diagramPage))); err != nil {
		t.Fatalf("the screenshot test shows docs/%s, a concept page with a diagram: %v", diagramPage, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: http.FileServer(http.Dir(s.dir)), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(ln) }()
	t.Cleanup(func() { _ = server.Close() })
	base := "http://" + ln.Addr().String()

	out := filepath.Join(root(), screenshotDir)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}

	// chromedp's defaults (headless, no background networking, extensions
	// or crash reports; shared memory in /tmp, as /dev/shm is small in
	// containers), a fresh profile, no sandbox (CI runs as root), and no
	// host name resolves, so nothing reaches beyond loopback.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(ctx)
	defer cancelBrowser()

	src := sources(t)
	// load opens the page at path and checks that each of its pictures
	// rendered; it returns them.
	load := func(path string) []rendered {
		t.Helper()
		page := base + path
		if err := chromedp.Do(ctx, chromedp.Navigate(page), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
			t.Fatalf("%s: %v", page, errors.Join(err, ctx.Err()))
		}
		pictures, err := chromedp.Run(ctx, chromedp.Evaluate[[]rendered](picturesJS))
		if err != nil {
			t.Fatalf("%s: listing the pictures: %v", page, err)
		}
		for _, p := range pictures {
			if !p.OK {
				t.Errorf("%s (%s): the %s %q did not render (%.0fx%.0f)", path, cmp.Or(src[path], "site layout"), p.Tag, p.Src, p.Width, p.Height)
			}
		}
		return pictures
	}

	for _, shot := range []struct {
		name     string // the PNG's name
		path     string // the page's URL path
		diagrams bool   // the page must show at least one diagram
	}{
		{"home.png", "/", false},
		{strings.ReplaceAll(strings.TrimSuffix(diagramPage, ".md"), "/", "-") + ".png", pageURL(diagramPage), true},
	} {
		page := base + shot.path
		pictures := load(shot.path)
		navLinks, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('nav a').length`))
		if err != nil {
			t.Fatalf("%s: counting the navigation links: %v", page, err)
		}
		heading, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('main h1') || {}).textContent || ''`))
		if err != nil {
			t.Fatalf("%s: reading the title: %v", page, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("%s: screenshot: %v", page, err)
		}
		file := filepath.Join(out, shot.name)
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s (%d bytes), %d pictures, %d navigation links", shot.path, file, len(png), len(pictures), navLinks)

		if navLinks < 10 {
			t.Errorf("%s: the navigation shows %d links", shot.path, navLinks)
		}
		if strings.TrimSpace(heading) == "" {
			t.Errorf("%s: the page shows no title (main h1)", shot.path)
		}
		if shot.diagrams && len(pictures) == 0 {
			t.Errorf("%s (docs/%s): no diagram in the page", shot.path, diagramPage)
		}
	}

	// The diagrams of every other page render too: a broken SVG is a file
	// that exists, which the link check passes.
	pages := s.parsedPages(t)
	checked := 0
	for _, path := range slices.Sorted(maps.Keys(pages)) {
		if pages[path].pictures > 0 && path != "/" && path != pageURL(diagramPage) {
			checked += len(load(path))
		}
	}
	t.Logf("%d pictures of other pages rendered", checked)
}
