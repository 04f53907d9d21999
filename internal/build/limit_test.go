package build

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf16"

	"github.com/fluxcd/pkg/apis/kustomize"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/yaml"
)

func configMaps(n int, prefix string) string {
	docs := make([]string, n)
	for i := range docs {
		docs[i] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s%d\n", prefix, i)
	}
	return strings.Join(docs, "---\n")
}

// listOf returns a kind: <kind> document whose items are n ConfigMaps, each
// item as one flow mapping.
func listOf(kind string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: v1\nkind: %s\nitems:\n", kind)
	for i := range n {
		fmt.Fprintf(&b, "- {apiVersion: v1, kind: ConfigMap, metadata: {name: item%d}}\n", i)
	}
	return b.String()
}

// utf16LE encodes s in UTF-16, little-endian, with a byte order mark.
func utf16LE(s string) string {
	b := []byte{0xff, 0xfe}
	for _, c := range utf16.Encode([]rune(s)) {
		b = append(b, byte(c), byte(c>>8))
	}
	return string(b)
}

// inlineGenerators returns a kustomization with n generator configs
// written inline in its generators field.
func inlineGenerators(n int) string {
	var b strings.Builder
	b.WriteString("generators:\n")
	for i := range n {
		fmt.Fprintf(&b, "- |\n  apiVersion: builtin\n  kind: ConfigMapGenerator\n  metadata: {name: gen%d}\n  literals: [x=1]\n", i)
	}
	return b.String()
}

// generatorEntries returns n configMapGenerator entries.
func generatorEntries(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- {name: gen%d, literals: [x=1]}\n", i)
	}
	return b.String()
}

func yamlToJSON(t *testing.T, y string) string {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}

func TestObjectsIn(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             int
	}{
		{"documents", "a.yaml", configMaps(3, "cm"), 3},
		{"empty documents, comments and end markers are no objects", "a.yaml", "---\n# only a comment\n---\n\n---\n" + configMaps(1, "cm") + "...\n---\n", 1},
		{"content on the first marker line", "a.yaml", "--- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n---\n{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n", 2},
		{"a marker needs the line to itself or a space", "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  x: |\n    ---x\n", 1},
		{"a marker may carry a comment", "a.yaml", strings.ReplaceAll(configMaps(3, "cm"), "---\n", "---#\n"), 3},
		{"CRLF line ends", "a.yaml", strings.ReplaceAll(configMaps(2, "cm"), "\n", "\r\n"), 2},
		{"UTF-16", "a.yaml", utf16LE(listOf("List", 3)), 3},
		{"a List counts its items", "a.yaml", listOf("List", 7), 7},
		{"any FooList with items", "a.yaml", listOf("ConfigMapList", 4) + "---\n" + configMaps(1, "cm"), 5},
		{"a ResourceList", "a.yaml", strings.Replace(listOf("ResourceList", 3), "apiVersion: v1", "apiVersion: config.kubernetes.io/v1", 1), 3},
		{"nested Lists", "a.yaml", "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(listOf("List", 5), "\n"), "\n", "\n  ") + "\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n", 6},
		{"a List without items is one object", "a.yaml", "apiVersion: v1\nkind: PodList\nmetadata: {name: x}\n", 1},
		{"an escaped List kind", "a.yaml", strings.Replace(listOf("List", 3), "kind: List", `kind: "\x4Cist"`, 1), 3},
		{"duplicate kinds: kustomize reads the first", "a.yaml", strings.Replace(listOf("List", 3), "kind: List\n", "kind: List\nkind: ConfigMap\n", 1), 3},
		{"duplicate items: kustomize reads the first", "a.yaml", listOf("List", 3) + "items: []\n", 3},
		{"JSON", "a.json", `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}`, 2},
		{"JSON with an escaped List kind", "a.json", `{"apiVersion": "v1", "kind": "\u004cist", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}`, 2},
		{"a file kustomize refuses is no object", "a.yaml", "kind: List\nitems: [\n", 0},
		{"a data file is no object", "app.env", "A=1\nB=2\n", 0},
		{"a kustomization counts its generators", "kustomization.yaml", "resources: [a.yaml]\nconfigMapGenerator:\n- {name: a, literals: [x=1]}\n- {name: b, literals: [x=1]}\nsecretGenerator:\n- {name: c, literals: [x=1]}\n", 3},
		{"generator keys in any case", "kustomization.yaml", "ConfigMapGenerator:\n- {name: a, literals: [x=1]}\nSECRETGENERATOR:\n- {name: c, literals: [x=1]}\n", 2},
		{"inline generators", "kustomization.yaml", "generators:\n- gen.yaml\n- |\n  apiVersion: builtin\n  kind: ConfigMapGenerator\n  metadata: {name: a}\n- |\n  apiVersion: builtin\n  kind: SecretGenerator\n  metadata: {name: b}\n", 2},
		{"a kustomization alone is no object", "kustomization.yml", "resources: [a.yaml]\n", 0},
		{"a kustomization of kind Kustomization is no object", "Kustomization", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n", 0},
		{"a file named kustomization.yaml counts its resources", "kustomization.yaml", configMaps(3, "cm"), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(objectsIn([]byte(tt.data), kustomizationOf(tt.file, []byte(tt.data)))).To(Equal(tt.want))
		})
	}
}

func TestBuild_MaxObjects(t *testing.T) {
	const limit = 20
	tests := []struct {
		name    string
		files   map[string]string
		patches []kustomize.Patch
		refused bool
	}{
		{name: "at the limit", files: map[string]string{"app/cms.yaml": configMaps(limit, "cm")}},
		{name: "over the limit", files: map[string]string{"app/cms.yaml": configMaps(limit+1, "cm")}, refused: true},
		{name: "over the limit in several files", files: map[string]string{"app/a.yaml": configMaps(limit, "a"), "app/b.yaml": configMaps(1, "b")}, refused: true},
		{name: "over the limit in a List", files: map[string]string{"app/list.yaml": listOf("ConfigMapList", limit+1)}, refused: true},
		{name: "over the limit with a kustomization's generators", files: map[string]string{
			"app/kustomization.yaml": "resources: [cms.yaml]\nconfigMapGenerator:\n- {name: gen, literals: [x=1]}\n",
			"app/cms.yaml":           configMaps(limit, "cm"),
		}, refused: true},
		{name: "over the limit in a base outside the stage path", files: map[string]string{
			"app/kustomization.yaml":  "resources: [../base]\n",
			"base/kustomization.yaml": "resources: [cms.yaml]\n",
			"base/cms.yaml":           configMaps(limit+1, "cm"),
		}, refused: true},
		{name: "at the limit with an overlay and generators", files: map[string]string{
			"app/kustomization.yaml":  "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../base]\nconfigMapGenerator:\n- {name: gen, literals: [x=1]}\n",
			"base/kustomization.yaml": "resources: [cms.yaml]\nsecretGenerator:\n- {name: gen, literals: [x=1]}\n",
			"base/cms.yaml":           configMaps(limit-2, "cm"),
		}},
		{name: "over the limit in a base read twice", files: map[string]string{
			"app/kustomization.yaml":   "resources: [a, b]\n",
			"app/a/kustomization.yaml": "namePrefix: a-\nresources: [../../base]\n",
			"app/b/kustomization.yaml": "namePrefix: b-\nresources: [../../base]\n",
			"base/kustomization.yaml":  "resources: [cms.yaml]\n",
			"base/cms.yaml":            configMaps(limit/2+1, "cm"),
		}, refused: true},
		// Files kustomize reads differently from a YAML look-alike.
		{name: "over the limit in a List with an escaped kind", files: map[string]string{"app/list.yaml": strings.Replace(listOf("List", limit+1), "kind: List", `kind: "\x4Cist"`, 1)}, refused: true},
		{name: "over the limit in a UTF-16 List", files: map[string]string{"app/list.yaml": utf16LE(listOf("List", limit+1))}, refused: true},
		{name: "over the limit with commented separators", files: map[string]string{"app/cms.yaml": strings.ReplaceAll(configMaps(limit+1, "cm"), "---\n", "---# next\n")}, refused: true},
		{name: "over the limit in a List with duplicate kinds", files: map[string]string{"app/list.yaml": strings.Replace(listOf("List", limit+1), "kind: List\n", "kind: List\nkind: ConfigMap\n", 1)}, refused: true},
		{name: "over the limit in a List with duplicate items", files: map[string]string{"app/list.yaml": listOf("List", limit+1) + "items: []\n"}, refused: true},
		{name: "over the limit in a JSON List with an escaped kind", files: map[string]string{
			"app/kustomization.yaml": "resources: [list.json]\n",
			"app/list.json":          strings.Replace(yamlToJSON(t, listOf("List", limit+1)), `"kind":"List"`, `"kind":"\u004cist"`, 1),
		}, refused: true},
		// Objects a kustomization makes without a file of their own.
		{name: "over the limit with inline generators", files: map[string]string{"app/kustomization.yaml": inlineGenerators(limit + 1)}, refused: true},
		{name: "over the limit with generator keys in another case in a base", files: map[string]string{
			"app/kustomization.yaml":  "resources: [../base]\n",
			"base/kustomization.yaml": "ConfigMapGenerator:\n" + generatorEntries(limit+1),
		}, refused: true},
		{name: "over the limit in a file named kustomization.yaml", files: map[string]string{
			"app/kustomization.yaml":     "resources: [cms/kustomization.yaml]\n",
			"app/cms/kustomization.yaml": configMaps(limit+1, "cm"),
		}, refused: true},
		{name: "over the limit with patches", files: map[string]string{"app/cms.yaml": configMaps(limit+1, "cm")},
			patches: []kustomize.Patch{{Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm0}\ndata: {x: y}\n"}}, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			root := t.TempDir()
			writeTree(t, root, tt.files)
			objects, err := Build(Input{Root: root, Path: "./app", Patches: tt.patches, MaxObjects: limit})
			if !tt.refused {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(objects).To(HaveLen(limit))
				return
			}
			g.Expect(err).To(MatchError(`stage path "./app" holds more than 20 objects, the limit per stage (--max-objects-per-stage): split it into several stages`))
			var buildErr *Error
			g.Expect(errors.As(err, &buildErr)).To(BeTrue())
			g.Expect(objects).To(BeEmpty())

			// Without a limit the same stage builds.
			objects, err = Build(Input{Root: root, Path: "./app", Patches: tt.patches})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(len(objects)).To(BeNumerically(">", limit))
		})
	}
}

// A kustomization naming a remote file or base is refused before kustomize
// fetches it, with or without an object limit: the host would be the
// tenant's choice, the fetch would hold the build lock without a timeout,
// and its objects would never be counted.
func TestBuild_RemoteReferencesAreRefusedUnfetched(t *testing.T) {
	var hits atomic.Int64
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(configMaps(3, "remote")))
	}))
	defer server.Close()

	for name, kustomization := range map[string]string{
		"resource":       "resources: [" + server.URL + "/cms.yaml]\n",
		"patch":          "resources: [cm.yaml]\npatches:\n- path: " + server.URL + "/patch.yaml\n",
		"generator-file": "configMapGenerator:\n- name: gen\n  files: [key=" + server.URL + "/data]\n",
		"generator-env":  "configMapGenerator:\n- name: gen\n  envs: [" + server.URL + "/env]\n",
		"component":      "resources: [cm.yaml]\ncomponents: [" + server.URL + "/component]\n",
		"openapi":        "resources: [cm.yaml]\nopenapi:\n  path: " + server.URL + "/schema.json\n",
		"git-https":      "resources:\n- https://github.com/example/repo//base?ref=v1\n",
		"git-ssh":        "resources: [ssh://git@example.com/org/repo]\n",
		"git-at":         "resources: ['git@github.com:example/repo.git']\n",
		"git-schemeless": "resources:\n- github.com/example/repo/base?ref=v1\n",
		// kustomize clones a scheme-less reference with any user name, or
		// the scp-like GitHub form, first (git.NewRepoSpecFromURL).
		"git-github-scp": "resources: ['github.com:example/repo//base']\n",
		"git-any-user":   "components: ['deploy@git.example.com:org/repo.git']\n",
		"git-forced":     "bases: ['git::deploy@git.example.com:org/repo']\n",
	} {
		for _, limit := range []int{0, DefaultMaxObjects} {
			t.Run(fmt.Sprintf("%s-limit-%d", name, limit), func(t *testing.T) {
				g := NewWithT(t)
				root := t.TempDir()
				writeTree(t, root, map[string]string{"app/kustomization.yaml": kustomization, "app/cm.yaml": configMaps(1, "cm")})
				_, err := Build(Input{Root: root, Path: "./app", MaxObjects: limit})
				g.Expect(err).To(MatchError(ContainSubstring(`kustomize build of stage path "./app" refused: `)))
				g.Expect(err).To(MatchError(ContainSubstring("is remote: remote files and bases are not supported, vendor them into the source")))
				g.Expect(err.Error()).NotTo(ContainSubstring(root), "no host path")
			})
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the server was asked %d times; want none", n)
	}

	// A nested kustomization is checked too, and local references pass.
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/kustomization.yaml":  "resources: [../base, cm.yaml]\n",
		"app/cm.yaml":             configMaps(1, "cm"),
		"base/kustomization.yaml": "resources: [" + server.URL + "/cms.yaml]\n",
	})
	_, err := Build(Input{Root: root, Path: "./app"})
	g.Expect(err).To(MatchError(ContainSubstring("is remote")))
	writeTree(t, root, map[string]string{"base/kustomization.yaml": "resources: [cms.yaml]\n", "base/cms.yaml": configMaps(2, "base")})
	objects, err := Build(Input{Root: root, Path: "./app"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(objects).To(HaveLen(3))
	g.Expect(hits.Load()).To(BeZero())
}
