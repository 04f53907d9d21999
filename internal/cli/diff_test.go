package cli

import (
	"bytes"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/stageset/stageset-controller/internal/controller"
)

func diffConfigMap(value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "app", "namespace": "apps", "resourceVersion": "7", "uid": "u-1",
			"creationTimestamp": "2026-01-01T00:00:00Z", "generation": int64(2)},
		"data": map[string]any{"v": value},
	}}
}

// A changed object is a unified diff without the API server's bookkeeping,
// colored only on a terminal.
func TestDiffPrinter(t *testing.T) {
	g := NewWithT(t)
	var out bytes.Buffer
	p := &diffPrinter{out: &out}
	g.Expect(p.diff("ConfigMap/apps/app", diffConfigMap("one"), diffConfigMap("two"))).To(Succeed())
	g.Expect(out.String()).To(Equal(`► ConfigMap/apps/app configured
--- live
+++ dry-run
@@ -1,6 +1,6 @@
 apiVersion: v1
 data:
-  v: one
+  v: two
 kind: ConfigMap
 metadata:
   name: app
`))

	out.Reset()
	p.color = true
	g.Expect(p.diff("ConfigMap/apps/app", diffConfigMap("one"), diffConfigMap("two"))).To(Succeed())
	g.Expect(out.String()).To(ContainSubstring("\n\x1b[31m-  v: one\x1b[0m\n\x1b[32m+  v: two\x1b[0m\n"))
	g.Expect(out.String()).To(ContainSubstring("\n\x1b[36m@@ -1,6 +1,6 @@\x1b[0m\n"))
	g.Expect(out.String()).To(ContainSubstring("\n--- live\n+++ dry-run\n"), "file headers stay plain")
}

// A Secret's last-applied-configuration annotation, which holds its values
// in clear, is not printed; other objects keep theirs.
func TestDiffYAMLDropsASecretsLastAppliedConfiguration(t *testing.T) {
	g := NewWithT(t)
	secret := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "db", "namespace": "apps", "annotations": map[string]any{
			"kubectl.kubernetes.io/last-applied-configuration": `{"stringData":{"password":"hunter2"}}`, "team": "db"}},
		"data": map[string]any{"password": "***"},
	}}
	out, err := diffYAML(secret)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).NotTo(ContainSubstring("hunter2"))
	g.Expect(out).To(ContainSubstring("team: db"))

	cm := diffConfigMap("one")
	cm.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"})
	out, err = diffYAML(cm)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("last-applied-configuration"))
}

// diff dry-runs with the controller's own field manager, or it would show
// changes of ownership the controller never makes.
func TestDiffAppliesAsTheController(t *testing.T) {
	if controllerName != controller.ControllerName {
		t.Fatalf("diff applies as %q, the controller as %q", controllerName, controller.ControllerName)
	}
}
