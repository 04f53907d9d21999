package cli

import (
	"bytes"
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
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

// The objects of a removed stage would be pruned, unless the stage was last
// applied with prune: false: then they stay, and the stage is no change.
func TestDiffRemovedStagesFollowTheirPruneSetting(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	for _, stage := range []string{"kept", "pruned"} {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: stage, Namespace: ns, Labels: map[string]string{
			stagesetv1.NameLabel: "shop", stagesetv1.NamespaceLabel: ns, stagesetv1.StageLabel: stage}}}
		g.Expect(env.Client.Create(ctx, cm)).To(Succeed())
	}
	inventory := func(name string) *stagesetv1.ResourceInventory {
		return &stagesetv1.ResourceInventory{Entries: []stagesetv1.ResourceRef{{ID: ns + "_" + name + "__ConfigMap", Version: "v1"}}}
	}
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Status: stagesetv1.StageSetStatus{Stages: []stagesetv1.StageStatus{
			{Name: "kept", PruneDisabled: true, Inventory: inventory("kept")},
			{Name: "pruned", Inventory: inventory("pruned")},
		}},
	}
	var out bytes.Buffer
	removed, err := diffRemovedStages(ctx, env.Client, apply.NewManager(env.Client, controllerName), &diffPrinter{out: &out}, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(removed).To(Equal([]string{"pruned"}))
	g.Expect(out.String()).To(Equal("► ConfigMap/" + ns + "/kept would stay (stage \"kept\" was removed, its prune is false)\n" +
		"► ConfigMap/" + ns + "/pruned would be pruned (stage \"pruned\" was removed)\n"))
}
