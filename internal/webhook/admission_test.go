package webhook

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func duration(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

// validStageSet uses the parts the webhook checks beyond the CRD schema,
// each in a valid way: a window, health check and ready expressions, and
// actions of every verb.
func validStageSet(ns, name string) *stagesetv1.StageSet {
	return &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  duration(5 * time.Minute),
			SourceRef: &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			DependsOn: []meta.DependencyReference{{Name: "db", ReadyExpr: "dep.status.observedGeneration == dep.metadata.generation"}},
			UpdateWindows: []stagesetv1.UpdateWindow{
				{Type: stagesetv1.UpdateWindowAllow, Schedule: "0 9 * * MON-FRI", Duration: duration(8 * time.Hour), TimeZone: "Europe/Berlin"},
			},
			Stages: []stagesetv1.Stage{{
				Name: "app", Path: "./app",
				HealthCheckExprs: []kustomize.CustomHealthCheck{{APIVersion: "example.com/v1", Kind: "Thing",
					HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "status.ready == true"}}},
				Actions: &stagesetv1.StageActions{
					Pre: []stagesetv1.Action{{Name: "pause", Wait: &stagesetv1.WaitAction{Duration: ptrDuration(time.Second)}}},
					Post: []stagesetv1.Action{
						{Name: "gate", Patch: &stagesetv1.PatchAction{
							Target: stagesetv1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Name: "gate"},
							Type:   "json6902", Patch: `[{"op":"add","path":"/data/open","value":"yes"}]`}},
						{Name: "notify", HTTP: &stagesetv1.HTTPAction{URL: "https://hooks.example.com/done"}},
					},
				},
			}},
		},
	}
}

func ptrDuration(d time.Duration) *metav1.Duration { v := duration(d); return &v }

// causes returns the field of every cause of an Invalid status error.
func causes(g Gomega, err error) []string {
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid status error, got %v", err)
	status, ok := err.(apierrors.APIStatus)
	g.Expect(ok).To(BeTrue())
	details := status.Status().Details
	g.Expect(details).NotTo(BeNil())
	var fields []string
	for _, c := range details.Causes {
		fields = append(fields, c.Field)
	}
	return fields
}

// A bad cron, a bad time zone, health check and ready expressions that do
// not compile and bad actions are all refused at create time, in one
// answer, each at its field; nothing is stored.
func TestAdmissionRefusesEveryProblemAtCreateInOneAnswer(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	obj := validStageSet(ns, "broken")
	obj.Spec.UpdateWindows = append(obj.Spec.UpdateWindows,
		stagesetv1.UpdateWindow{Type: stagesetv1.UpdateWindowDeny, Schedule: "61 * * * *", Duration: duration(time.Hour)},
		stagesetv1.UpdateWindow{Type: stagesetv1.UpdateWindowDeny, Schedule: "@daily", Duration: duration(time.Hour), TimeZone: "Mars/Base"})
	obj.Spec.Stages[0].HealthCheckExprs[0].Current = "status.ready =="
	obj.Spec.DependsOn[0].ReadyExpr = "dep.status.ready &&"
	post := obj.Spec.Stages[0].Actions.Post
	post[0].Patch.Patch = "data: {open: yes}" // an object, not json6902 operations
	post[1].Name = "gate"                     // two post actions called gate
	post[1].HTTP.URL = "https://"             // no host

	err := env.Client.Create(ctx, obj)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring(`admission webhook "validate.stageset.io" denied the request`))
	g.Expect(causes(g, err)).To(ConsistOf(
		"spec.dependsOn[0].readyExpr",
		"spec.updateWindows[1].schedule",
		"spec.updateWindows[2].timeZone",
		"spec.stages[0].healthCheckExprs[0].current",
		"spec.stages[0].actions.post[0].patch.patch",
		"spec.stages[0].actions.post[1].name",
		"spec.stages[0].actions.post[1].http.url",
	))
	g.Expect(apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), &stagesetv1.StageSet{}))).To(BeTrue())
}

// The shipped sample and a StageSet using every checked part are admitted.
func TestAdmissionAdmitsValidStageSets(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "samples", "stageset_shop.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	sample := &stagesetv1.StageSet{}
	g.Expect(yaml.UnmarshalStrict(raw, sample)).To(Succeed())
	sample.Namespace = ns
	g.Expect(env.Client.Create(ctx, sample)).To(Succeed())

	g.Expect(env.Client.Create(ctx, validStageSet(ns, "full"))).To(Succeed())
}

// An update that makes the spec invalid is refused at its field, and the
// stored StageSet keeps its valid spec.
func TestAdmissionValidatesUpdates(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	obj := validStageSet(ns, "shop")
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	obj.Spec.UpdateWindows[0].TimeZone = "Europe/Atlantis"
	obj.Spec.Stages[0].HealthCheckExprs[0].Failed = "status.("
	err := env.Client.Update(ctx, obj)
	g.Expect(err).To(HaveOccurred())
	g.Expect(causes(g, err)).To(ConsistOf(
		"spec.updateWindows[0].timeZone",
		"spec.stages[0].healthCheckExprs[0].failed",
	))

	stored := &stagesetv1.StageSet{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), stored)).To(Succeed())
	g.Expect(stored.Spec.UpdateWindows[0].TimeZone).To(Equal("Europe/Berlin"))

	// A valid change goes through.
	stored.Spec.UpdateWindows[0].TimeZone = "America/New_York"
	g.Expect(env.Client.Update(ctx, stored)).To(Succeed())
}

// Under --no-cross-namespace-refs, sources and dependencies in another
// namespace are refused at admission, each at its field.
func TestAdmissionRefusesCrossNamespaceRefs(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	g.Expect(suiteOptions.NoCrossNamespaceRefs).To(BeTrue())

	obj := validStageSet(ns, "shop")
	obj.Spec.SourceRef.Namespace = "flux-system"
	obj.Spec.DependsOn = append(obj.Spec.DependsOn, meta.DependencyReference{Name: "db", Namespace: "databases"})
	obj.Spec.Stages[0].SourceRef = &stagesetv1.SourceReference{Kind: stagesetv1.OCIRepositoryKind, Name: "app", Namespace: "other"}
	err := env.Client.Create(ctx, obj)
	g.Expect(err).To(HaveOccurred())
	g.Expect(causes(g, err)).To(ConsistOf(
		"spec.sourceRef.namespace",
		"spec.dependsOn[1].namespace",
		"spec.stages[0].sourceRef.namespace",
	))
	g.Expect(err.Error()).To(ContainSubstring("--no-cross-namespace-refs"))

	// The same references in the StageSet's own namespace are fine.
	obj.Spec.SourceRef.Namespace = ns
	obj.Spec.DependsOn[1].Namespace = ns
	obj.Spec.Stages[0].SourceRef.Namespace = ns
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
}

// A StageSet stored while the webhook was down can still be labelled,
// annotated, finalized and deleted; only a change of its spec must make it
// valid.
func TestAdmissionLetsMetadataUpdatesOfAStoredInvalidStageSetThrough(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	obj := validStageSet(ns, "stored")
	obj.Labels = map[string]string{bypassLabel: "true"}
	obj.Spec.UpdateWindows[0].TimeZone = "Mars/Base"
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	// From here on the webhook sees it.
	delete(obj.Labels, bypassLabel)
	obj.Finalizers = []string{stagesetv1.StageSetFinalizer}
	obj.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "now"}
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())

	// Suspending it while it is being fixed is let through; any other
	// spec change must fix it.
	obj.Spec.Suspend = true
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	obj.Spec.Interval.Duration *= 2
	err := env.Client.Update(ctx, obj)
	g.Expect(causes(g, err)).To(Equal([]string{"spec.updateWindows[0].timeZone"}))

	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	obj.Spec.Suspend = false
	obj.Finalizers = nil
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Expect(apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj))).To(BeTrue())
}
