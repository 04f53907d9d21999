// Package release_test checks the shape of the release configuration: the
// GoReleaser config builds what the Flux plugin manifest points at, with
// the version the Makefile stamps.
package release_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The names the one binary is shipped under.
var binaries = []string{"stagesetctl", "flux-stageset", "kubectl-stageset"}

const (
	versionVar  = "github.com/stageset/stageset-controller/internal/version.Version"
	pluginBin   = "flux-stageset"
	archiveMain = "./cmd/stagesetctl"
)

type goreleaserConfig struct {
	Version  int
	Builds   []build
	Archives []archive
	Checksum struct {
		NameTemplate string `json:"name_template"`
		Algorithm    string
	}
}

type build struct {
	ID, Binary, Main      string
	Ldflags, Goos, Goarch []string
}

type archive struct {
	ID              string
	IDs             []string `json:"ids"`
	NameTemplate    string   `json:"name_template"`
	Formats         []string
	FormatOverrides []struct {
		Goos    string
		Formats []string
	} `json:"format_overrides"`
}

// plugin is the cli.fluxcd.io/v1beta1 Plugin of the fluxcd/plugins schema
// (which allows no other fields: it is decoded strictly).
type plugin struct {
	APIVersion  string `json:"apiVersion"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Homepage    string `json:"homepage"`
	Source      string `json:"source"`
	Bin         string `json:"bin"`
	Versions    []struct {
		Version   string     `json:"version"`
		Platforms []platform `json:"platforms"`
	} `json:"versions"`
}

type platform struct {
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	URL      string `json:"url"`
	Checksum string `json:"checksum"`
}

// checkRelease lists what is wrong with the GoReleaser config and the
// plugin manifest, each given as YAML (or JSON).
func checkRelease(goreleaserYAML, pluginYAML []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	var g goreleaserConfig
	if err := yaml.Unmarshal(goreleaserYAML, &g); err != nil {
		return []string{"goreleaser: " + err.Error()}
	}
	if g.Version != 2 {
		bad("goreleaser: version is %d, want 2", g.Version)
	}
	// The platforms every build makes, as "os/arch".
	var platforms []string
	buildIDs := map[string]string{} // binary → build id
	for _, name := range binaries {
		i := slices.IndexFunc(g.Builds, func(b build) bool { return b.Binary == name })
		if i < 0 {
			bad("goreleaser: no build has binary %q", name)
			continue
		}
		b := g.Builds[i]
		buildIDs[name] = b.ID
		if b.Main != archiveMain {
			bad("goreleaser: build %q: main is %q, want %q", b.ID, b.Main, archiveMain)
		}
		if !slices.ContainsFunc(b.Ldflags, func(f string) bool { return strings.Contains(f, "-X "+versionVar+"={{ .Version }}") }) {
			bad("goreleaser: build %q: ldflags do not set %s", b.ID, versionVar)
		}
		if len(b.Goos) == 0 || len(b.Goarch) == 0 {
			bad("goreleaser: build %q: no goos or goarch", b.ID)
		}
		var these []string
		for _, goos := range b.Goos {
			for _, goarch := range b.Goarch {
				these = append(these, goos+"/"+goarch)
			}
		}
		slices.Sort(these)
		if platforms == nil {
			platforms = these
		} else if !slices.Equal(platforms, these) {
			bad("goreleaser: build %q makes %v, another build %v", b.ID, these, platforms)
		}
	}

	// The archive that holds all three names.
	var arc *archive
	for i := range g.Archives {
		a := &g.Archives[i]
		if !slices.ContainsFunc(binaries, func(name string) bool {
			id, ok := buildIDs[name]
			return !ok || len(a.IDs) > 0 && !slices.Contains(a.IDs, id)
		}) {
			arc = a
		}
	}
	switch {
	case arc == nil:
		bad("goreleaser: no archive holds %v", binaries)
	case arc.NameTemplate == "":
		bad("goreleaser: archive %q has no name_template", arc.ID)
	}
	extension := func(goos string) string {
		formats := []string{"tar.gz"}
		if arc != nil && len(arc.Formats) > 0 {
			formats = arc.Formats
		}
		if arc != nil {
			for _, o := range arc.FormatOverrides {
				if o.Goos == goos {
					formats = o.Formats
				}
			}
		}
		if len(formats) != 1 {
			return ""
		}
		return formats[0]
	}
	// Flux extracts tar.gz, tar and zip; Windows users expect a zip.
	if got := extension("windows"); got != "zip" {
		bad("goreleaser: windows archives are %q, want zip", got)
	}
	if got := extension("linux"); got != "tar.gz" {
		bad("goreleaser: linux archives are %q, want tar.gz", got)
	}
	if g.Checksum.NameTemplate == "" {
		bad("goreleaser: checksum has no name_template")
	}
	if a := g.Checksum.Algorithm; a != "" && a != "sha256" {
		bad("goreleaser: checksum algorithm is %q, the plugin manifest wants sha256", a)
	}

	var p plugin
	if err := yaml.UnmarshalStrict(pluginYAML, &p); err != nil {
		return append(problems, "plugin: "+err.Error())
	}
	for field, got := range map[string]string{
		"apiVersion": p.APIVersion, "kind": p.Kind, "name": p.Name, "bin": p.Bin,
	} {
		if want := map[string]string{"apiVersion": "cli.fluxcd.io/v1beta1", "kind": "Plugin", "name": "stageset", "bin": pluginBin}[field]; got != want {
			bad("plugin: %s is %q, want %q", field, got, want)
		}
	}
	if p.Description == "" {
		bad("plugin: no description")
	}
	for field, url := range map[string]string{"homepage": p.Homepage, "source": p.Source} {
		if !strings.HasPrefix(url, "https://") {
			bad("plugin: %s %q is not an https URL", field, url)
		}
	}
	if len(p.Versions) == 0 {
		return append(problems, "plugin: no versions")
	}
	version := regexp.MustCompile(`^([0-9]+\.[0-9]+\.[0-9]+(-.+)?|\$\{VERSION\})$`)
	checksum := regexp.MustCompile(`^sha256:([a-f0-9]{64}|\$\{SHA256_[a-z0-9]+_[a-z0-9]+\})$`)
	for _, v := range p.Versions {
		if !version.MatchString(v.Version) {
			bad("plugin: version %q is not semver without a v", v.Version)
		}
		var listed []string
		for _, pl := range v.Platforms {
			key := pl.OS + "/" + pl.Arch
			listed = append(listed, key)
			if !slices.Contains(platforms, key) {
				bad("plugin: %s %s is not built by goreleaser", v.Version, key)
			}
			if arc != nil {
				want := strings.NewReplacer("{{ .Version }}", v.Version, "{{ .Os }}", pl.OS, "{{ .Arch }}", pl.Arch).
					Replace(arc.NameTemplate) + "." + extension(pl.OS)
				if !strings.HasPrefix(pl.URL, "https://") || !strings.HasSuffix(pl.URL, "/v"+v.Version+"/"+want) {
					bad("plugin: %s %s: url %q is not the release's archive %s", v.Version, key, pl.URL, want)
				}
			}
			if !checksum.MatchString(pl.Checksum) {
				bad("plugin: %s %s: checksum %q is not sha256:<hex>", v.Version, key, pl.Checksum)
			}
		}
		for _, key := range platforms {
			if !slices.Contains(listed, key) {
				bad("plugin: %s has no archive for %s, which goreleaser builds", v.Version, key)
			}
		}
	}
	if arc != nil && !slices.Contains(arc.IDs, buildIDs[p.Bin]) && len(arc.IDs) > 0 {
		bad("plugin: bin %q is not in the archive", p.Bin)
	}
	return problems
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestReleaseShape(t *testing.T) {
	for _, p := range checkRelease(readFile(t, ".goreleaser.yaml"), readFile(t, "flux-stageset.yaml")) {
		t.Error(p)
	}
}

// The version variable the release stamps is the one `make build` and `make
// cli` stamp, and it exists.
func TestReleaseStampsTheMakefileVersion(t *testing.T) {
	makefile := string(readFile(t, "../../Makefile"))
	m := regexp.MustCompile(`(?m)^LDFLAGS := -X (\S+)=\$\(VERSION\)$`).FindStringSubmatch(makefile)
	if m == nil || m[1] != versionVar {
		t.Fatalf("the Makefile's LDFLAGS set %v, the release sets %s", m, versionVar)
	}
	if !regexp.MustCompile(`(?m)^var Version = `).Match(readFile(t, "../../internal/version/version.go")) {
		t.Fatalf("internal/version has no var Version for -X %s", versionVar)
	}
	cli := regexp.MustCompile(`(?m)^cli:.*\n((?:\t.*\n)+)`).FindStringSubmatch(makefile)
	if cli == nil || !strings.Contains(cli[1], `-ldflags "$(LDFLAGS)"`) {
		t.Fatalf("make cli does not build with $(LDFLAGS)")
	}
	for _, name := range binaries[1:] {
		if !strings.Contains(makefile, name) {
			t.Errorf("make cli does not make %s", name)
		}
	}
}

// Each field the checks rely on, taken away, is reported: the shape test
// cannot pass on a config that lost it.
func TestReleaseShapeCatchesMissingFields(t *testing.T) {
	goreleaserYAML, pluginYAML := readFile(t, ".goreleaser.yaml"), readFile(t, "flux-stageset.yaml")
	for _, tc := range []struct{ file, path, want string }{
		{"plugin", "apiVersion", "apiVersion"},
		{"plugin", "kind", "kind"},
		{"plugin", "name", "name"},
		{"plugin", "bin", "bin"},
		{"plugin", "description", "description"},
		{"plugin", "homepage", "homepage"},
		{"plugin", "source", "source"},
		{"plugin", "versions", "no versions"},
		{"plugin", "versions.0.version", "semver"},
		{"plugin", "versions.0.platforms.0.url", "url"},
		{"plugin", "versions.0.platforms.1.checksum", "checksum"},
		{"plugin", "versions.0.platforms.5", "has no archive for windows/arm64"},
		{"goreleaser", "version", "version"},
		{"goreleaser", "builds.1", `no build has binary "flux-stageset"`},
		{"goreleaser", "builds.2.ldflags", "ldflags"},
		{"goreleaser", "builds.0.goarch", "goarch"},
		{"goreleaser", "archives.0.name_template", "name_template"},
		{"goreleaser", "archives.0.format_overrides", "windows archives"},
		{"goreleaser", "checksum", "checksum"},
	} {
		t.Run(tc.file+"/"+tc.path, func(t *testing.T) {
			g, p := goreleaserYAML, pluginYAML
			if tc.file == "plugin" {
				p = without(t, p, tc.path)
			} else {
				g = without(t, g, tc.path)
			}
			problems := checkRelease(g, p)
			if !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, tc.want) }) {
				t.Fatalf("without %s: problems %q, want one about %q", tc.path, problems, tc.want)
			}
		})
	}
	// An unknown field is refused like the catalog's schema refuses it.
	var m map[string]any
	if err := yaml.Unmarshal(pluginYAML, &m); err != nil {
		t.Fatal(err)
	}
	m["shortDescription"] = "x"
	extra, _ := json.Marshal(m)
	if problems := checkRelease(goreleaserYAML, extra); !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, "shortDescription") }) {
		t.Fatalf("an unknown field passed: %q", problems)
	}
}

// without returns the document (as JSON) with the field at the dotted path
// removed; a number is a list index.
func without(t *testing.T, doc []byte, path string) []byte {
	t.Helper()
	var root any
	if err := yaml.Unmarshal(doc, &root); err != nil {
		t.Fatal(err)
	}
	keys := strings.Split(path, ".")
	var remove func(node any, keys []string) any
	remove = func(node any, keys []string) any {
		switch n := node.(type) {
		case map[string]any:
			if len(keys) == 1 {
				delete(n, keys[0])
			} else {
				n[keys[0]] = remove(n[keys[0]], keys[1:])
			}
			return n
		case []any:
			i, err := strconv.Atoi(keys[0])
			if err != nil || i >= len(n) {
				t.Fatalf("no %s in the document", path)
			}
			if len(keys) == 1 {
				return slices.Delete(n, i, i+1)
			}
			n[i] = remove(n[i], keys[1:])
			return n
		}
		t.Fatalf("no %s in the document", path)
		return nil
	}
	out, err := json.Marshal(remove(root, keys))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// render-plugin-manifest.sh fills the manifest from a release's checksums
// file into what the catalog's schema accepts.
func TestRenderPluginManifest(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("a POSIX shell script")
	}
	var p plugin
	if err := yaml.Unmarshal(readFile(t, "flux-stageset.yaml"), &p); err != nil {
		t.Fatal(err)
	}
	var checksums strings.Builder
	for i, pl := range p.Versions[0].Platforms {
		ext := ".tar.gz"
		if pl.OS == "windows" {
			ext = ".zip"
		}
		fmt.Fprintf(&checksums, "%064x  flux-stageset_1.2.0_%s_%s%s\n", i+1, pl.OS, pl.Arch, ext)
	}
	path := filepath.Join(t.TempDir(), "flux-stageset_1.2.0_checksums.txt")
	if err := os.WriteFile(path, []byte(checksums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "render-plugin-manifest.sh", "1.2.0", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "${") {
		t.Fatalf("placeholders left:\n%s", out)
	}
	for _, problem := range checkRelease(readFile(t, ".goreleaser.yaml"), out) {
		t.Error(problem)
	}
	var rendered plugin
	if err := yaml.UnmarshalStrict(out, &rendered); err != nil {
		t.Fatal(err)
	}
	if got := rendered.Versions[0].Platforms[2].Checksum; got != fmt.Sprintf("sha256:%064x", 3) {
		t.Fatalf("the linux/amd64 checksum is %q", got)
	}

	// A checksums file that lacks an archive is an error, not a manifest
	// with a hole.
	if err := os.WriteFile(path, []byte(strings.SplitN(checksums.String(), "\n", 2)[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "render-plugin-manifest.sh", "1.2.0", path).CombinedOutput(); err == nil {
		t.Fatalf("rendered with a missing checksum:\n%s", out)
	}
}
