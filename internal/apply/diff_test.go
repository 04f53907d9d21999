package apply

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func TestDiff_ReportsDriftWithoutWriting(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	owner := Owner{Name: "shop", Namespace: ns, Stage: "db"}
	stage := func() []*unstructured.Unstructured {
		return []*unstructured.Unstructured{
			configMap(ns, "a", map[string]any{"k": "1"}),
			configMap(ns, "b", map[string]any{"k": "1"}),
		}
	}

	_, err := m.Apply(ctx, owner, stage(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	objects := stage()
	cs, err := m.Diff(ctx, owner, objects, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/a": ssa.UnchangedAction,
		"ConfigMap/" + ns + "/b": ssa.UnchangedAction,
	}))
	// The owner labels were set on copies.
	g.Expect(objects[0].GetLabels()).To(BeEmpty())

	// An edit of a managed field by someone else is drift, and stays.
	edited := liveObject(t, configMap(ns, "a", nil))
	edited.Object["data"] = map[string]any{"k": "by-hand"}
	g.Expect(env.Client.Update(ctx, edited, client.FieldOwner("someone"))).To(Succeed())
	rv := liveObject(t, edited).GetResourceVersion()

	cs, err = m.Diff(ctx, owner, stage(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/a": ssa.ConfiguredAction,
		"ConfigMap/" + ns + "/b": ssa.UnchangedAction,
	}))
	a := liveObject(t, edited)
	g.Expect(a.GetResourceVersion()).To(Equal(rv))
	g.Expect(a.Object["data"]).To(Equal(map[string]any{"k": "by-hand"}))

	// A deleted object would be created, and is not.
	g.Expect(env.Client.Delete(ctx, configMap(ns, "b", nil))).To(Succeed())
	g.Eventually(func() *unstructured.Unstructured { return liveObject(t, configMap(ns, "b", nil)) },
		testenv.Timeout, testenv.Poll).Should(BeNil())
	cs, err = m.Diff(ctx, owner, stage(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/a": ssa.ConfiguredAction,
		"ConfigMap/" + ns + "/b": ssa.CreatedAction,
	}))
	g.Expect(liveObject(t, configMap(ns, "b", nil))).To(BeNil())
}

func TestDiff_OwnerLabelsAreNotDrift(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	cm := func() []*unstructured.Unstructured {
		return []*unstructured.Unstructured{configMap(ns, "cm", map[string]any{"k": "v"})}
	}
	_, err := m.Apply(ctx, Owner{Name: "s", Namespace: ns, Stage: "one"}, cm(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	cs, err := m.Diff(ctx, Owner{Name: "s", Namespace: ns, Stage: "one"}, cm(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.UnchangedAction))

	// Moving the object to another stage changes its labels: that is drift.
	cs, err = m.Diff(ctx, Owner{Name: "s", Namespace: ns, Stage: "two"}, cm(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.ConfiguredAction))
}

func TestDiff_SkippedAndStageDefinedObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	owner := Owner{Name: "s", Namespace: ns, Stage: "one"}
	annotated := func(o *unstructured.Unstructured, policy string) *unstructured.Unstructured {
		o.SetAnnotations(map[string]string{stagesetv1.SSAAnnotation: policy})
		return o
	}
	present := configMap(ns, "present", map[string]any{"k": "by-hand"})
	g.Expect(env.Client.Create(ctx, present)).To(Succeed())
	newNS := testenv.RandomName("later")

	cs, err := m.Diff(ctx, owner, []*unstructured.Unstructured{
		annotated(configMap(ns, "present", map[string]any{"k": "desired"}), SSAIfNotPresent),
		annotated(configMap(ns, "absent", map[string]any{"k": "desired"}), SSAIfNotPresent),
		annotated(configMap(ns, "ignored", map[string]any{"k": "v"}), SSAIgnore),
		fromYAML(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+newNS+"}"),
		configMap(newNS, "inside", map[string]any{"k": "v"}),
	}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/present":   ssa.SkippedAction,
		"ConfigMap/" + ns + "/absent":    ssa.CreatedAction,
		"ConfigMap/" + ns + "/ignored":   ssa.SkippedAction,
		"Namespace/" + newNS:             ssa.CreatedAction,
		"ConfigMap/" + newNS + "/inside": ssa.CreatedAction,
	}))
	g.Expect(liveObject(t, configMap(ns, "absent", nil))).To(BeNil())
	g.Expect(liveObject(t, configMap(newNS, "inside", nil))).To(BeNil())
}

func TestDiff_ErrorsNameTheObject(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	_, err := newManager().Diff(context.Background(), Owner{Name: "s", Namespace: ns, Stage: "one"},
		[]*unstructured.Unstructured{
			configMap(ns, "good", map[string]any{"k": "v"}),
			configMap(ns, "bad", map[string]any{"k": int64(5)}),
			configMap(testenv.RandomName("missing"), "lost", map[string]any{"k": "v"}),
		}, ApplyOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("ConfigMap/" + ns + "/bad")))
	g.Expect(err).To(MatchError(ContainSubstring("/lost")))
	g.Expect(err).NotTo(MatchError(ContainSubstring("/good")))
}

func TestDiff_ForcedRecreation(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	owner := Owner{Name: "s", Namespace: ns, Stage: "one"}
	immutable := func(data map[string]any) []*unstructured.Unstructured {
		o := configMap(ns, "frozen", data)
		o.Object["immutable"] = true
		return []*unstructured.Unstructured{o}
	}
	_, err := m.Apply(ctx, owner, immutable(map[string]any{"k": "1"}), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	_, err = m.Diff(ctx, owner, immutable(map[string]any{"k": "2"}), ApplyOptions{})
	g.Expect(err).To(MatchError(ContainSubstring("ConfigMap/" + ns + "/frozen")))

	cs, err := m.Diff(ctx, owner, immutable(map[string]any{"k": "2"}), ApplyOptions{Force: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{"ConfigMap/" + ns + "/frozen": ssa.CreatedAction}))

	// Apply would refuse a replacement that is invalid, so Diff does too.
	_, err = m.Diff(ctx, owner, immutable(map[string]any{"not a key!": "v"}), ApplyOptions{Force: true})
	g.Expect(err).To(MatchError(ContainSubstring("ConfigMap/" + ns + "/frozen")))
	g.Expect(liveObject(t, immutable(nil)[0]).Object["data"]).To(Equal(map[string]any{"k": "1"}))
}
