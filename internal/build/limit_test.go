package build

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	. "github.com/onsi/gomega"
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

func TestObjectsIn(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             int
	}{
		{"documents", "a.yaml", configMaps(3, "cm"), 3},
		{"empty documents, comments and end markers are no objects", "a.yaml", "---\n# only a comment\n---\n\n---\n%YAML 1.2\n---\n" + configMaps(1, "cm") + "...\n---\n", 1},
		{"content on the marker line", "a.yaml", "--- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n--- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n", 2},
		{"a marker needs the line to itself or a space", "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  x: |\n    ---x\n", 1},
		{"CRLF line ends", "a.yaml", strings.ReplaceAll(configMaps(2, "cm"), "\n", "\r\n"), 2},
		{"a List counts its items", "a.yaml", listOf("List", 7), 7},
		{"any FooList with items", "a.yaml", listOf("ConfigMapList", 4) + "---\n" + configMaps(1, "cm"), 5},
		{"a ResourceList", "a.yaml", strings.Replace(listOf("ResourceList", 3), "apiVersion: v1", "apiVersion: config.kubernetes.io/v1", 1), 3},
		{"nested Lists", "a.yaml", "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(listOf("List", 5), "\n"), "\n", "\n  ") + "\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: x}}\n", 6},
		{"a List without items is one object", "a.yaml", "apiVersion: v1\nkind: PodList\nmetadata: {name: x}\n", 1},
		{"JSON", "a.json", `{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}`, 2},
		{"unparsable List document", "a.yaml", "kind: List\nitems: [\n", 1},
		{"a kustomization counts its generators", "kustomization.yaml", "resources: [a.yaml]\nconfigMapGenerator:\n- {name: a, literals: [x=1]}\n- {name: b, literals: [x=1]}\nsecretGenerator:\n- {name: c, literals: [x=1]}\n", 3},
		{"a kustomization alone is no object", "kustomization.yml", "resources: [a.yaml]\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			g.Expect(objectsIn(tt.file, []byte(tt.data))).To(Equal(tt.want))
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
