package apply

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/jsondiff"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// web returns the manifest of the Deployment web with two replicas.
func web(t *testing.T, ns string) *unstructured.Unstructured {
	t.Helper()
	return fromYAML(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: `+ns+`}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1"}]
`)
}

// replicas reads the live replica count of a Deployment.
func replicas(t *testing.T, obj *unstructured.Unstructured) int64 {
	t.Helper()
	n, _, err := unstructured.NestedInt64(liveObject(t, obj).Object, "spec", "replicas")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// scaleByUpdate sets spec.replicas with a plain Update of another manager.
func scaleByUpdate(manager string) func(t *testing.T, obj *unstructured.Unstructured, n int64) {
	return func(t *testing.T, obj *unstructured.Unstructured, n int64) {
		t.Helper()
		l := liveObject(t, obj)
		if err := unstructured.SetNestedField(l.Object, n, "spec", "replicas"); err != nil {
			t.Fatal(err)
		}
		if err := env.Client.Update(context.Background(), l, client.FieldOwner(manager)); err != nil {
			t.Fatalf("scaling %s: %v", obj.GetName(), err)
		}
	}
}

// scaleBySubresource scales through the scale subresource, as an HPA does.
func scaleBySubresource(t *testing.T, obj *unstructured.Unstructured, n int64) {
	t.Helper()
	dep := &appsv1.Deployment{}
	dep.Namespace, dep.Name = obj.GetNamespace(), obj.GetName()
	scale := &autoscalingv1.Scale{Spec: autoscalingv1.ScaleSpec{Replicas: int32(n)}}
	if err := env.Client.SubResource("scale").Update(context.Background(), dep,
		client.WithSubResourceBody(scale), client.FieldOwner("horizontal-pod-autoscaler")); err != nil {
		t.Fatalf("scaling %s: %v", obj.GetName(), err)
	}
}

var ignoreReplicas = []stagesetv1.IgnoreRule{{
	Paths:  []string{"/spec/replicas"},
	Target: &kustomize.Selector{Kind: "Deployment"},
}}

func TestApply_IgnoredFieldIsNotReasserted(t *testing.T) {
	tests := []struct {
		name  string
		scale func(t *testing.T, obj *unstructured.Unstructured, n int64)
		// action of the first Apply after the scale.
		action ssa.Action
	}{
		{name: "scaled by another manager", scale: scaleByUpdate("scaler"), action: ssa.UnchangedAction},
		{name: "scaled through the scale subresource", scale: scaleBySubresource, action: ssa.UnchangedAction},
		// ssa takes over the fields of kubectl-* Update managers, a write;
		// the scaled value is adopted all the same.
		{name: "scaled by kubectl edit", scale: scaleByUpdate("kubectl-edit"), action: ssa.ConfiguredAction},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := env.NewNamespace(t)
			m := newManager()
			owner := Owner{Name: "s", Namespace: ns, Stage: "app"}
			opts := ApplyOptions{IgnoreRules: ignoreReplicas}
			id := "Deployment/" + ns + "/web"

			cs, err := m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{id: ssa.CreatedAction}))
			g.Expect(replicas(t, web(t, ns))).To(Equal(int64(2)))

			tt.scale(t, web(t, ns), 5)

			cs, err = m.Diff(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{id: ssa.UnchangedAction}))

			cs, err = m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{id: tt.action}))
			g.Expect(replicas(t, web(t, ns))).To(Equal(int64(5)))

			// Steady state: nothing is written any more.
			rv := liveObject(t, web(t, ns)).GetResourceVersion()
			cs, err = m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{id: ssa.UnchangedAction}))
			g.Expect(liveObject(t, web(t, ns)).GetResourceVersion()).To(Equal(rv))

			// A change of another field is applied, and the scaled value
			// survives that write.
			changed := web(t, ns)
			g.Expect(unstructured.SetNestedField(changed.Object, "2", "metadata", "annotations", "revision")).To(Succeed())
			cs, err = m.Apply(ctx, owner, []*unstructured.Unstructured{changed}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{id: ssa.ConfiguredAction}))
			g.Expect(liveObject(t, changed).GetAnnotations()).To(HaveKeyWithValue("revision", "2"))
			g.Expect(replicas(t, changed)).To(Equal(int64(5)))
		})
	}
}

func TestApply_IgnoreRuleTargets(t *testing.T) {
	tests := []struct {
		name    string
		target  *kustomize.Selector
		ignored bool
	}{
		{name: "no target selects every object", target: nil, ignored: true},
		{name: "kind", target: &kustomize.Selector{Kind: "Deployment"}, ignored: true},
		{name: "group, version, kind and name", target: &kustomize.Selector{Group: "apps", Version: "v1", Kind: "Deployment", Name: "web"}, ignored: true},
		{name: "name pattern", target: &kustomize.Selector{Name: "w.*"}, ignored: true},
		{name: "owner label", target: &kustomize.Selector{LabelSelector: stagesetv1.StageLabel + "=app"}, ignored: true},
		{name: "another kind", target: &kustomize.Selector{Kind: "StatefulSet"}, ignored: false},
		{name: "kind prefix only: names are anchored", target: &kustomize.Selector{Kind: "Deploy"}, ignored: false},
		{name: "another name", target: &kustomize.Selector{Kind: "Deployment", Name: "api"}, ignored: false},
		{name: "another namespace", target: &kustomize.Selector{Namespace: "elsewhere"}, ignored: false},
		{name: "label not set", target: &kustomize.Selector{LabelSelector: "tier=db"}, ignored: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := env.NewNamespace(t)
			m := newManager()
			owner := Owner{Name: "s", Namespace: ns, Stage: "app"}
			opts := ApplyOptions{IgnoreRules: []stagesetv1.IgnoreRule{{Paths: []string{"/spec/replicas"}, Target: tt.target}}}

			_, err := m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			scaleByUpdate("scaler")(t, web(t, ns), 5)

			want, replicasAfter := ssa.UnchangedAction, int64(5)
			if !tt.ignored {
				want, replicasAfter = ssa.ConfiguredAction, 2
			}
			cs, err := m.Diff(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(HaveEach(want))
			cs, err = m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns)}, opts)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(cs.ToMap()).To(HaveEach(want))
			g.Expect(replicas(t, web(t, ns))).To(Equal(replicasAfter))
		})
	}
}

func TestApply_WithoutIgnoreRuleDriftIsCorrected(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	owner := Owner{Name: "s", Namespace: ns, Stage: "app"}
	cm := func(value string) *unstructured.Unstructured { return configMap(ns, "cm", map[string]any{"k": value}) }
	// The rule targets Deployments only: the ConfigMap's drift is corrected.
	opts := ApplyOptions{IgnoreRules: []stagesetv1.IgnoreRule{{
		Paths:  []string{"/spec/replicas", "/data"},
		Target: &kustomize.Selector{Kind: "Deployment"},
	}}}

	_, err := m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns), cm("1")}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	scaleByUpdate("scaler")(t, web(t, ns), 5)
	edited := liveObject(t, cm(""))
	edited.Object["data"] = map[string]any{"k": "by-hand"}
	g.Expect(env.Client.Update(ctx, edited, client.FieldOwner("someone"))).To(Succeed())

	cs, err := m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns), cm("1")}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"Deployment/" + ns + "/web": ssa.ConfiguredAction,
		"ConfigMap/" + ns + "/cm":   ssa.ConfiguredAction,
	}))
	g.Expect(replicas(t, web(t, ns))).To(Equal(int64(2)))
	g.Expect(liveObject(t, cm("")).Object["data"]).To(Equal(map[string]any{"k": "1"}))

	// With the rule, only the Deployment keeps its scaled value.
	scaleByUpdate("scaler")(t, web(t, ns), 5)
	g.Expect(env.Client.Update(ctx, withData(liveObject(t, cm("")), "by-hand"), client.FieldOwner("someone"))).To(Succeed())
	cs, err = m.Apply(ctx, owner, []*unstructured.Unstructured{web(t, ns), cm("1")}, opts)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"Deployment/" + ns + "/web": ssa.UnchangedAction,
		"ConfigMap/" + ns + "/cm":   ssa.ConfiguredAction,
	}))
	g.Expect(replicas(t, web(t, ns))).To(Equal(int64(5)))
	g.Expect(liveObject(t, cm("")).Object["data"]).To(Equal(map[string]any{"k": "1"}))
}

func withData(obj *unstructured.Unstructured, value string) *unstructured.Unstructured {
	obj.Object["data"] = map[string]any{"k": value}
	return obj
}

func TestDriftIgnoreRules(t *testing.T) {
	t.Run("rules without target are all kept", func(t *testing.T) {
		g := NewWithT(t)
		rules, err := driftIgnoreRules([]stagesetv1.IgnoreRule{
			{Paths: []string{"/spec/replicas"}},
			{Paths: []string{"/metadata/annotations/scaled"}},
		})
		g.Expect(err).NotTo(HaveOccurred())
		compiled, err := jsondiff.CompileIgnoreRules(rules)
		g.Expect(err).NotTo(HaveOccurred())
		var paths []string
		for _, p := range compiled {
			paths = append(paths, p...)
		}
		g.Expect(paths).To(ConsistOf("/spec/replicas", "/metadata/annotations/scaled"))
	})

	t.Run("selector fields are mapped", func(t *testing.T) {
		g := NewWithT(t)
		target := kustomize.Selector{Group: "g", Version: "v", Kind: "k", Name: "n", Namespace: "ns", LabelSelector: "a=b", AnnotationSelector: "c=d"}
		rules, err := driftIgnoreRules([]stagesetv1.IgnoreRule{{Paths: []string{"/x"}, Target: &target}})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(rules).To(Equal([]jsondiff.IgnoreRule{{Paths: []string{"/x"}, Selector: &jsondiff.Selector{
			Group: "g", Version: "v", Kind: "k", Name: "n", Namespace: "ns", LabelSelector: "a=b", AnnotationSelector: "c=d",
		}}}))
	})

	invalid := []struct {
		name    string
		rule    stagesetv1.IgnoreRule
		message string
	}{
		{name: "no paths", rule: stagesetv1.IgnoreRule{}, message: "driftDetection.ignore[1]: no paths"},
		{name: "not a pointer", rule: stagesetv1.IgnoreRule{Paths: []string{"spec.replicas"}}, message: `path "spec.replicas" is not a JSON pointer`},
		{name: "whole object", rule: stagesetv1.IgnoreRule{Paths: []string{""}}, message: `path "" is not a JSON pointer`},
		{name: "bad regex", rule: stagesetv1.IgnoreRule{Paths: []string{"/x"}, Target: &kustomize.Selector{Name: "("}}, message: "driftDetection.ignore[1].target: invalid name regex"},
		{name: "bad label selector", rule: stagesetv1.IgnoreRule{Paths: []string{"/x"}, Target: &kustomize.Selector{LabelSelector: "a b c"}}, message: "driftDetection.ignore[1].target: invalid label selector"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := driftIgnoreRules([]stagesetv1.IgnoreRule{{Paths: []string{"/ok"}}, tt.rule})
			g.Expect(err).To(MatchError(ContainSubstring(tt.message)))
		})
	}
}

func TestApply_InvalidIgnoreRuleAppliesNothing(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	cm := configMap(ns, "cm", map[string]any{"k": "v"})
	opts := ApplyOptions{IgnoreRules: []stagesetv1.IgnoreRule{{Paths: []string{"spec"}}}}
	_, err := newManager().Apply(context.Background(), Owner{Name: "s", Namespace: ns, Stage: "one"}, []*unstructured.Unstructured{cm}, opts)
	g.Expect(err).To(MatchError(ContainSubstring("driftDetection.ignore[0]")))
	g.Expect(liveObject(t, cm)).To(BeNil())
	_, err = newManager().Diff(context.Background(), Owner{Name: "s", Namespace: ns, Stage: "one"}, []*unstructured.Unstructured{cm}, opts)
	g.Expect(err).To(MatchError(ContainSubstring("driftDetection.ignore[0]")))
}
