package apply

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func TestApply_LabelsFieldManagerAndDrift(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	owner := Owner{Name: "shop", Namespace: "apps", Stage: "db"}

	stage := func(value string) []*unstructured.Unstructured {
		return []*unstructured.Unstructured{
			configMap(ns, "a", map[string]any{"k": value}),
			configMap(ns, "b", map[string]any{"k": "fixed"}),
		}
	}

	cs, err := m.Apply(ctx, owner, stage("1"), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/a": ssa.CreatedAction,
		"ConfigMap/" + ns + "/b": ssa.CreatedAction,
	}))

	a := liveObject(t, configMap(ns, "a", nil))
	g.Expect(a.GetLabels()).To(Equal(map[string]string{
		stagesetv1.NameLabel:      "shop",
		stagesetv1.NamespaceLabel: "apps",
		stagesetv1.StageLabel:     "db",
	}))
	var managers []string
	for _, f := range a.GetManagedFields() {
		if f.Operation == metav1.ManagedFieldsOperationApply {
			managers = append(managers, f.Manager)
		}
	}
	g.Expect(managers).To(ConsistOf(fieldManager))
	rv := a.GetResourceVersion()

	cs, err = m.Apply(ctx, owner, stage("1"), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.UnchangedAction))
	g.Expect(liveObject(t, configMap(ns, "a", nil)).GetResourceVersion()).To(Equal(rv))

	cs, err = m.Apply(ctx, owner, stage("2"), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/a": ssa.ConfiguredAction,
		"ConfigMap/" + ns + "/b": ssa.UnchangedAction,
	}))
	g.Expect(liveObject(t, configMap(ns, "a", nil)).Object["data"]).To(Equal(map[string]any{"k": "2"}))
}

func TestApply_NamespaceWithItsObjects(t *testing.T) {
	g := NewWithT(t)
	newNS := testenv.RandomName("stage-ns")
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), fromYAML(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+newNS+"}"))
	})
	objects := []*unstructured.Unstructured{
		configMap(newNS, "inside", map[string]any{"k": "v"}),
		fromYAML(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+newNS+"}"),
	}
	cs, err := newManager().Apply(context.Background(), Owner{Name: "s", Namespace: "n", Stage: "one"}, objects, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"Namespace/" + newNS:             ssa.CreatedAction,
		"ConfigMap/" + newNS + "/inside": ssa.CreatedAction,
	}))
	// The caller's slice keeps its order; ssa sorts a copy.
	g.Expect(objects[0].GetKind()).To(Equal("ConfigMap"))
}

func TestApply_CRDWithItsCustomResources(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	group := testenv.RandomName("g") + ".tests.stageset.io"
	crd := fromYAML(t, `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.`+group+`}
spec:
  group: `+group+`
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, properties: {size: {type: integer}}}
`)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), crd.DeepCopy()) })
	cr := fromYAML(t, "apiVersion: "+group+"/v1\nkind: Gadget\nmetadata: {name: g1, namespace: "+ns+"}\nspec: {size: 3}")

	cs, err := newManager().Apply(context.Background(), Owner{Name: "s", Namespace: ns, Stage: "crds"},
		[]*unstructured.Unstructured{cr, crd}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveKeyWithValue("Gadget/"+ns+"/g1", ssa.CreatedAction))
	g.Expect(liveObject(t, cr)).NotTo(BeNil())
}

func TestApply_InvalidObjectAppliesNothing(t *testing.T) {
	tests := []struct {
		name    string
		bad     func(ns string) *unstructured.Unstructured
		message string
	}{
		{
			name:    "field of the wrong type",
			bad:     func(ns string) *unstructured.Unstructured { return configMap(ns, "bad", map[string]any{"k": int64(5)}) },
			message: "ConfigMap/<ns>/bad",
		},
		{
			name: "unknown kind",
			bad: func(ns string) *unstructured.Unstructured {
				o := configMap(ns, "bad", nil)
				o.SetAPIVersion("nowhere.stageset.io/v1")
				o.SetKind("Ghost")
				return o
			},
			message: "Ghost/<ns>/bad: unknown kind",
		},
		{
			name:    "namespaced object without namespace",
			bad:     func(string) *unstructured.Unstructured { return configMap("", "bad", map[string]any{"k": "v"}) },
			message: "ConfigMap/bad: namespace not specified",
		},
		{
			name: "invalid value",
			bad: func(ns string) *unstructured.Unstructured {
				return configMap(ns, "bad", map[string]any{"not a key!": "v"})
			},
			message: "ConfigMap/<ns>/bad dry-run failed (Invalid)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			newNS := testenv.RandomName("never")
			good := configMap(ns, "good", map[string]any{"k": "v"})
			namespace := fromYAML(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+newNS+"}")
			message := strings.ReplaceAll(tt.message, "<ns>", ns)

			cs, err := newManager().Apply(context.Background(), Owner{Name: "s", Namespace: ns, Stage: "one"},
				[]*unstructured.Unstructured{namespace, good, tt.bad(ns)}, ApplyOptions{})
			g.Expect(err).To(MatchError(ContainSubstring(message)))
			g.Expect(err).To(MatchError(ContainSubstring("nothing applied")))
			g.Expect(cs).To(BeNil())
			g.Expect(liveObject(t, good)).To(BeNil())
			g.Expect(liveObject(t, namespace)).To(BeNil())
		})
	}
}

func TestApply_ImmutableFields(t *testing.T) {
	ctx := context.Background()
	immutable := func(ns, value string) *unstructured.Unstructured {
		o := configMap(ns, "frozen", map[string]any{"k": value})
		o.Object["immutable"] = true
		return o
	}
	owner := Owner{Name: "s", Namespace: "n", Stage: "one"}

	t.Run("refused without force", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{immutable(ns, "1")}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		_, err = newManager().Apply(ctx, owner, []*unstructured.Unstructured{immutable(ns, "2")}, ApplyOptions{})
		g.Expect(err).To(MatchError(ContainSubstring("ConfigMap/" + ns + "/frozen")))
		g.Expect(liveObject(t, immutable(ns, "")).Object["data"]).To(Equal(map[string]any{"k": "1"}))
	})

	t.Run("recreated with stage force", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{immutable(ns, "1")}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		cs, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{immutable(ns, "2")}, ApplyOptions{Force: true})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cs.Entries).To(HaveLen(1))
		g.Expect(liveObject(t, immutable(ns, "")).Object["data"]).To(Equal(map[string]any{"k": "2"}))
	})

	t.Run("recreated with the force annotation", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{immutable(ns, "1")}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		changed := immutable(ns, "2")
		changed.SetAnnotations(map[string]string{stagesetv1.ForceAnnotation: stagesetv1.EnabledValue})
		_, err = newManager().Apply(ctx, owner, []*unstructured.Unstructured{changed}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(liveObject(t, changed).Object["data"]).To(Equal(map[string]any{"k": "2"}))
	})

	t.Run("force never deletes an object whose replacement is invalid", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{immutable(ns, "1")}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		uid := liveObject(t, immutable(ns, "")).GetUID()

		bad := immutable(ns, "")
		bad.Object["data"] = map[string]any{"not a key!": "v"}
		_, err = newManager().Apply(ctx, owner, []*unstructured.Unstructured{bad}, ApplyOptions{Force: true})
		g.Expect(err).To(MatchError(ContainSubstring("nothing applied")))
		g.Expect(liveObject(t, bad).GetUID()).To(Equal(uid))
	})
}

func TestApply_SSAAnnotation(t *testing.T) {
	ctx := context.Background()
	owner := Owner{Name: "s", Namespace: "n", Stage: "one"}
	annotated := func(o *unstructured.Unstructured, policy string) *unstructured.Unstructured {
		o.SetAnnotations(map[string]string{stagesetv1.SSAAnnotation: policy})
		return o
	}
	// preexisting creates a ConfigMap the way kubectl would, with one field
	// the stage does not set.
	preexisting := func(t *testing.T, ns, name string) {
		t.Helper()
		o := configMap(ns, name, map[string]any{"k": "by-hand", "extra": "by-hand"})
		if err := env.Client.Create(ctx, o, client.FieldOwner("kubectl-client-side-apply")); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("IfNotPresent creates but never overwrites", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		preexisting(t, ns, "present")
		cs, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{
			annotated(configMap(ns, "present", map[string]any{"k": "desired"}), SSAIfNotPresent),
			annotated(configMap(ns, "absent", map[string]any{"k": "desired"}), SSAIfNotPresent),
		}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
			"ConfigMap/" + ns + "/present": ssa.SkippedAction,
			"ConfigMap/" + ns + "/absent":  ssa.CreatedAction,
		}))
		g.Expect(liveObject(t, configMap(ns, "present", nil)).Object["data"]).To(HaveKeyWithValue("k", "by-hand"))
	})

	t.Run("Ignore skips the object", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		ignored := annotated(configMap(ns, "ignored", map[string]any{"k": "v"}), SSAIgnore)
		cs, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{ignored}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{"ConfigMap/" + ns + "/ignored": ssa.SkippedAction}))
		g.Expect(liveObject(t, ignored)).To(BeNil())
	})

	t.Run("Ignore skips validation too", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		ignored := annotated(configMap(ns, "ignored", map[string]any{"k": int64(5)}), SSAIgnore)
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{ignored, configMap(ns, "ok", map[string]any{"k": "v"})}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	})

	t.Run("Override takes over fields set by kubectl", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		preexisting(t, ns, "cm")
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{configMap(ns, "cm", map[string]any{"k": "desired"})}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(liveObject(t, configMap(ns, "cm", nil)).Object["data"]).To(Equal(map[string]any{"k": "desired"}))
	})

	t.Run("Merge keeps fields set by kubectl", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		preexisting(t, ns, "cm")
		_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{
			annotated(configMap(ns, "cm", map[string]any{"k": "desired"}), SSAMerge),
		}, ApplyOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(liveObject(t, configMap(ns, "cm", nil)).Object["data"]).To(Equal(map[string]any{"k": "desired", "extra": "by-hand"}))
	})
}
