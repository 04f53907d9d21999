package controller

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// badCorpusMin is the size the corpus must keep (issue 16): a corpus that
// lost its directories would otherwise pass silently.
const badCorpusMin = 40

// Every case of tests/testdata/bad ends with its exact Ready reason and a
// message naming the problem, applies nothing of the failing stage (earlier
// stages only where the case allows it), never panics the controller, and
// the controller still rolls out a healthy StageSet afterwards.
func TestBadInputCorpus(t *testing.T) {
	cases, err := loadBadCorpus(filepath.Join(testenv.RepoRoot(), "tests", "testdata", "bad"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < badCorpusMin {
		t.Fatalf("the corpus has %d cases, want at least %d", len(cases), badCorpusMin)
	}
	// The parallel cases end before the group returns; the serial ones run
	// alone, since they keep the controller's worker busy for long.
	t.Run("parallel", func(t *testing.T) {
		for _, c := range cases {
			if !c.expect.Serial {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					runBadCase(t, c)
				})
			}
		}
	})
	for _, c := range cases {
		if c.expect.Serial {
			t.Run(c.name, func(t *testing.T) { runBadCase(t, c) })
		}
	}
	t.Run("the controller still serves others", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		readyStageSet(t, g, ns, files{"cm.yaml": configMap("healthy")}, stage("a", "./"))
		g.Expect(exists("v1", "ConfigMap", ns, "healthy")()).To(BeTrue())
	})
}

func runBadCase(t *testing.T, c badCase) {
	if c.expect.Skip != "" {
		t.Skipf("known bug, expected behaviour documented in %s: %s", c.dir, c.expect.Skip)
	}
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	r := &repo{t: t, kind: stagesetv1.GitRepositoryKind, ns: ns, name: "repo"}
	switch c.attack.Source {
	case "missing":
	case "noArtifact":
		src, err := env.CreateSource(ctx, r.kind, ns, r.name, nil)
		g.Expect(err).NotTo(HaveOccurred())
		r.src = src
	default:
		artifact, err := c.publish(r.path("bad"), ns)
		g.Expect(err).NotTo(HaveOccurred())
		r.src, err = env.CreateSource(ctx, r.kind, ns, r.name, artifact)
		g.Expect(err).NotTo(HaveOccurred())
	}

	objects, err := c.objects(ns)
	g.Expect(err).NotTo(HaveOccurred())
	// Whatever the StageSets need (service accounts, RBAC, variables) goes
	// first, as a tenant's namespace would hold it.
	slices.SortStableFunc(objects, func(a, b *unstructured.Unstructured) int {
		return boolInt(a.GetKind() == stagesetv1.StageSetKind) - boolInt(b.GetKind() == stagesetv1.StageSetKind)
	})
	var target *stagesetv1.StageSet
	for _, u := range objects {
		if u.GetKind() != stagesetv1.StageSetKind {
			g.Expect(env.Client.Create(ctx, u)).To(Succeed())
			continue
		}
		defaultBadStageSet(u, ns)
		err := env.Client.Create(ctx, u)
		if c.expect.RefusedBy == "apiserver" {
			g.Expect(err).To(HaveOccurred(), "the API server must refuse the StageSet")
			g.Expect(string(apierrors.ReasonForError(err))).To(Equal(c.expect.Reason), "%v", err)
			for _, m := range c.expect.Messages {
				g.Expect(err.Error()).To(ContainSubstring(m))
			}
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(u), NewStageSet())).NotTo(Succeed())
			return
		}
		g.Expect(err).NotTo(HaveOccurred())
		if target == nil && (c.expect.StageSet == "" || c.expect.StageSet == u.GetName()) {
			target = &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: u.GetName()}}
		}
	}
	g.Expect(target).NotTo(BeNil(), "stageset.yaml declares the StageSet of the expectation")

	status := c.expect.Status
	if status == "" {
		status = string(metav1.ConditionFalse)
	}
	if c.expect.Timeout != "" {
		wait, err := time.ParseDuration(c.expect.Timeout)
		g.Expect(err).NotTo(HaveOccurred())
		start := time.Now()
		g.Eventually(readyReason(g, target), wait, poll).Should(Equal(status + "/" + c.expect.Reason))
		t.Logf("%s took %s", c.name, time.Since(start).Round(time.Second))
	}
	eventuallyReason(t, g, target, status+"/"+c.expect.Reason)
	message := conditions.GetMessage(target, meta.ReadyCondition)
	for _, m := range c.expect.Messages {
		g.Expect(message).To(ContainSubstring(m))
	}
	// The controller's temporary directories (the artifact cache, the
	// download) change on every run and are nobody's business.
	g.Expect(message).NotTo(MatchRegexp(`stageset-artifacts?-\d`), "the message leaks a host path")
	g.Expect(conditions.IsStalled(target)).To(Equal(c.expect.Stalled), "Stalled, with message %q", message)
	// No panic: a recovered one would have been reported with its reason.
	g.Expect(eventsWithReason(ns, target.Name, stagesetv1.ReconciliationFailedReason)).To(BeEmpty())

	for _, o := range c.expect.Absent {
		g.Expect(badObjectExists(o, ns)).To(BeFalse(), "%s %s must not exist", o.Kind, o.Name)
	}
	for _, o := range c.expect.Present {
		g.Expect(badObjectExists(o, ns)).To(BeTrue(), "%s %s must exist", o.Kind, o.Name)
	}
	if status != string(metav1.ConditionTrue) {
		checkOnlyStagesApplied(g, target, c.expect.AppliedStages)
	}
	if n := c.expect.Count; n != nil {
		g.Expect(appliedObjects(g, target, "v1", n.Kind, true)).To(HaveLen(n.N), "applied completely")
	}
}

// defaultBadStageSet fills what every case would repeat: the source, the
// target namespace and short intervals.
func defaultBadStageSet(u *unstructured.Unstructured, ns string) {
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	if spec == nil {
		spec = map[string]any{}
	}
	defaults := map[string]any{
		"interval":        "1h",
		"timeout":         "20s",
		"targetNamespace": ns,
		"sourceRef":       map[string]any{"kind": stagesetv1.GitRepositoryKind, "name": "repo"},
	}
	for k, v := range defaults {
		if _, set := spec[k]; !set {
			spec[k] = v
		}
	}
	_ = unstructured.SetNestedMap(u.Object, spec, "spec")
}

// badScannedKinds are the kinds the corpus's artifacts declare: any of them
// labelled by a stage the case does not allow is a partial apply.
var badScannedKinds = []struct {
	apiVersion, kind string
	namespaced       bool
}{
	{"v1", "ConfigMap", true}, {"v1", "Secret", true}, {"v1", "ServiceAccount", true},
	{"batch/v1", "Job", true}, {"apps/v1", "Deployment", true},
	{"rbac.authorization.k8s.io/v1", "ClusterRole", false}, {"v1", "Namespace", false},
}

// checkOnlyStagesApplied fails when an object carries the ownership labels
// of obj and of a stage not in allowed.
func checkOnlyStagesApplied(g Gomega, obj *stagesetv1.StageSet, allowed []string) {
	for _, k := range badScannedKinds {
		for _, item := range appliedObjects(g, obj, k.apiVersion, k.kind, k.namespaced) {
			stage, ok := item.GetLabels()[stagesetv1.StageLabel]
			if !ok {
				continue // the controller's own records (ledger, snapshots)
			}
			g.Expect(allowed).To(ContainElement(stage), "%s %s of stage %q was applied", k.kind, item.GetName(), stage)
		}
	}
}

// appliedObjects lists the objects of a kind labelled as applied by obj.
func appliedObjects(g Gomega, obj *stagesetv1.StageSet, apiVersion, kind string, namespaced bool) []unstructured.Unstructured {
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion(apiVersion)
	list.SetKind(kind + "List")
	opts := []client.ListOption{client.MatchingLabels{stagesetv1.NameLabel: obj.Name, stagesetv1.NamespaceLabel: obj.Namespace}}
	if namespaced {
		opts = append(opts, client.InNamespace(obj.Namespace))
	}
	g.Expect(env.Client.List(context.Background(), list, opts...)).To(Succeed())
	return list.Items
}

func badObjectExists(o badObject, ns string) bool {
	apiVersion, namespace := o.APIVersion, o.Namespace
	if apiVersion == "" {
		apiVersion = "v1"
	}
	if namespace == "" && !o.Cluster {
		namespace = ns
	}
	return exists(apiVersion, o.Kind, namespace, o.Name)()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestInvalidSpecThatSlippedPastAdmissionStalls(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("x")})
	obj := newStageSet(ns, "self", src, stage("a", "./"))
	// The CRD cannot see a dependency on itself through its own namespace.
	obj.Spec.DependsOn = append(obj.Spec.DependsOn, metaDependency("self", ns))
	create(t, obj)
	eventuallyReason(t, g, obj, "False/InvalidSpec")
	g.Expect(conditions.IsStalled(obj)).To(BeTrue())
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("cannot depend on itself"))
	g.Expect(exists("v1", "ConfigMap", ns, "x")()).To(BeFalse())
}

// What only the admission webhook checks (cron, time zones, CEL) stalls a
// StageSet stored while the webhook was down, every problem named at its
// field, before anything is applied: one validation serves both.
func TestWebhookChecksStallTheReconcilerToo(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("x")})
	st := stage("a", "./")
	st.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "data.(("}}}
	obj := newStageSet(ns, "bad", src, st)
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{Type: stagesetv1.UpdateWindowAllow, Schedule: "0 2 * * *",
		TimeZone: "Mars/Olympus", Duration: metav1.Duration{Duration: time.Hour}}}
	create(t, obj)
	eventuallyReason(t, g, obj, "False/InvalidSpec")
	g.Expect(conditions.IsStalled(obj)).To(BeTrue())
	message := conditions.GetMessage(obj, meta.ReadyCondition)
	g.Expect(message).To(ContainSubstring("spec.updateWindows[0].timeZone"))
	g.Expect(message).To(ContainSubstring("spec.stages[0].healthCheckExprs[0].current"))
	g.Expect(exists("v1", "ConfigMap", ns, "x")()).To(BeFalse())
}

func metaDependency(name, namespace string) meta.DependencyReference {
	return meta.DependencyReference{Name: name, Namespace: namespace}
}
