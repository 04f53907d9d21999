package action

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func newConfigMap(t *testing.T, ns, name string, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: data}
	if err := env.Client.Create(context.Background(), cm); err != nil {
		t.Fatalf("creating ConfigMap: %v", err)
	}
	return cm
}

func patchAction(target stagesetv1.ObjectReference, typ, patch string) stagesetv1.Action {
	return stagesetv1.Action{Name: "toggle", Patch: &stagesetv1.PatchAction{Target: target, Type: typ, Patch: patch}}
}

func TestPatch(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		patch string
		want  map[string]string
	}{
		{name: "merge in YAML", typ: "merge", patch: "data:\n  maintenance: \"true\"\n", want: map[string]string{"maintenance": "true", "keep": "yes"}},
		{name: "merge by default, in JSON", patch: `{"data":{"maintenance":null}}`, want: map[string]string{"keep": "yes"}},
		{name: "json6902", typ: "json6902", patch: "- op: replace\n  path: /data/maintenance\n  value: \"on\"\n", want: map[string]string{"maintenance": "on", "keep": "yes"}},
		{name: "strategic on a built-in kind", typ: "strategic", patch: `{"data":{"keep":"no"}}`, want: map[string]string{"maintenance": "false", "keep": "no"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			cm := newConfigMap(t, ns, "flags", map[string]string{"maintenance": "false", "keep": "yes"})

			err := runner(ns).Run(context.Background(), patchAction(configMapRef("flags"), tt.typ, tt.patch), time.Minute)
			g.Expect(err).NotTo(HaveOccurred())

			g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(cm), cm)).To(Succeed())
			g.Expect(cm.Data).To(Equal(tt.want))
		})
	}
}

func TestPatch_explicitNamespace(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	other := env.NewNamespace(t)
	cm := newConfigMap(t, other, "flags", map[string]string{"a": "1"})

	ref := configMapRef("flags")
	ref.Namespace = other
	g.Expect(runner(ns).Run(context.Background(), patchAction(ref, "merge", `{"data":{"a":"2"}}`), time.Minute)).To(Succeed())
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(cm), cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("a", "2"))
}

func TestPatch_failures(t *testing.T) {
	ns := env.NewNamespace(t)
	newConfigMap(t, ns, "flags", map[string]string{"a": "1"})
	tests := []struct {
		name   string
		action stagesetv1.Action
		want   []string
	}{
		{name: "missing target", action: patchAction(configMapRef("absent"), "merge", `{"data":{"a":"2"}}`), want: []string{`patch action "toggle"`, "ConfigMap/" + ns + "/absent", "not found"}},
		{name: "unknown kind", action: patchAction(stagesetv1.ObjectReference{APIVersion: "example.com/v1", Kind: "Nope", Name: "x"}, "merge", `{}`), want: []string{"unknown kind example.com/v1 Nope"}},
		{name: "invalid YAML", action: patchAction(configMapRef("flags"), "merge", "data: [unclosed"), want: []string{"neither valid YAML nor JSON"}},
		{name: "unknown type", action: patchAction(configMapRef("flags"), "apply", `{}`), want: []string{`unknown patch type "apply"`}},
		{name: "json6902 test op fails", action: patchAction(configMapRef("flags"), "json6902", `[{"op":"test","path":"/data/a","value":"2"}]`), want: []string{"patching ConfigMap/" + ns + "/flags"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			err := runner(ns).Run(context.Background(), tt.action, time.Minute)
			g.Expect(err).To(HaveOccurred())
			for _, w := range tt.want {
				g.Expect(err.Error()).To(ContainSubstring(w))
			}
		})
	}
}

func TestPatch_strategicOnCustomResource(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	repo := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1",
		"kind":       "GitRepository",
		"metadata":   map[string]any{"name": "repo", "namespace": ns},
		"spec":       map[string]any{"url": "https://example.com/repo.git", "interval": "1m"},
	}}
	g.Expect(env.Client.Create(context.Background(), repo)).To(Succeed())

	target := stagesetv1.ObjectReference{APIVersion: "source.toolkit.fluxcd.io/v1", Kind: "GitRepository", Name: "repo"}
	err := runner(ns).Run(context.Background(), patchAction(target, "strategic", `{"spec":{"interval":"2m"}}`), time.Minute)
	g.Expect(err).To(MatchError(ContainSubstring("strategic merge patches work only on built-in kinds, use merge or json6902")))

	g.Expect(runner(ns).Run(context.Background(), patchAction(target, "merge", `{"spec":{"interval":"2m"}}`), time.Minute)).To(Succeed())
}
