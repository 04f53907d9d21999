package build

import (
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
)

// widgetSchema makes spec.items of a Widget a list merged by name.
const widgetSchema = `{"definitions": {"com.example.v1.Widget": {
  "type": "object",
  "properties": {
    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
    "spec": {"type": "object", "properties": {"items": {
      "type": "array",
      "items": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "string"}}},
      "x-kubernetes-patch-merge-key": "name",
      "x-kubernetes-patch-strategy": "merge"}}}},
  "x-kubernetes-group-version-kind": [{"group": "example.com", "kind": "Widget", "version": "v1"}]}}}`

const widget = `apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec:
  items:
  - {name: a, value: "1"}
  - {name: b, value: "2"}
`

const widgetPatch = `patches:
- patch: |-
    apiVersion: example.com/v1
    kind: Widget
    metadata: {name: w}
    spec:
      items:
      - {name: b, value: patched}
`

// The built-in OpenAPI schema is kept between builds (krustyRun), but what
// a kustomization's openapi field loads stays in its build: another
// tenant's build right after does not merge lists by the first one's
// schema, and the first one builds the same again.
func TestOpenAPIFieldStaysInItsBuild(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"custom/kustomization.yaml": "resources: [widget.yaml]\nopenapi:\n  path: schema.json\n" + widgetPatch,
		"custom/schema.json":        widgetSchema,
		"custom/widget.yaml":        widget,
		"plain/kustomization.yaml":  "resources: [widget.yaml]\n" + widgetPatch,
		"plain/widget.yaml":         widget,
	})
	items := func(path string) []any {
		t.Helper()
		objs, err := Build(Input{Root: root, Path: path})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(objs).To(HaveLen(1))
		spec := objs[0].Object["spec"].(map[string]any)
		return spec["items"].([]any)
	}
	merged := []any{
		map[string]any{"name": "a", "value": "1"},
		map[string]any{"name": "b", "value": "patched"},
	}
	replaced := []any{map[string]any{"name": "b", "value": "patched"}}

	g.Expect(items("plain")).To(ConsistOf(replaced...), "no schema: the list is replaced")
	g.Expect(items("custom")).To(ConsistOf(merged...), "the kustomization's schema merges by name")
	g.Expect(items("plain")).To(ConsistOf(replaced...), "the schema did not leak into the next build")
	g.Expect(items("custom")).To(ConsistOf(merged...))
	g.Expect(items("custom")).To(ConsistOf(merged...))
	g.Expect(items("plain")).To(ConsistOf(replaced...))
}

// BenchmarkBuildSmallStage builds a stage of four objects, the size of the
// scale scenario's stages (tests/bench/e2e), where a run's CPU is mostly
// its builds.
func BenchmarkBuildSmallStage(b *testing.B) {
	root := b.TempDir()
	files := map[string]string{}
	for _, name := range []string{"a", "b", "c", "d"} {
		files["app/"+name+".yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {k: v}\n"
	}
	writeTree(b, root, files)
	for b.Loop() {
		if _, err := Build(Input{Root: root, Path: "app", TargetNamespace: "ns"}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildLargeStage(b *testing.B) {
	root := b.TempDir()
	docs := make([]string, 0, 1000)
	for i := range 1000 {
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-%04d\n  labels:\n    bench.stageset.io/object: \"true\"\ndata:\n  revision: rev-1\n  a: %s\n  b: %s\n  c: %s\n", i, strings.Repeat("a", 32), strings.Repeat("b", 32), strings.Repeat("c", 32)))
	}
	writeTree(b, root, map[string]string{"app/objects.yaml": strings.Join(docs, "---\n")})
	for b.Loop() {
		if _, err := Build(Input{Root: root, Path: "app", TargetNamespace: "ns"}); err != nil {
			b.Fatal(err)
		}
	}
}
