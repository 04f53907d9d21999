package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// These tests run the controller the way main does and stop or restart it,
// for behaviour that belongs to the process: what survives a restart, and
// flags that change what a StageSet may do.

// startController runs the controller with args until the returned function
// stops it (also at the end of the test).
func startController(t *testing.T, args ...string) (stop func()) {
	t.Helper()
	return startControllerWith(t, env.Config, args...)
}

// startControllerWith is startController with the identity of restConfig.
func startControllerWith(t *testing.T, restConfig *rest.Config, args ...string) (stop func()) {
	t.Helper()
	opts := parseFlags(t, append([]string{"--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--integrity-key-secret=kube-system/stageset-controller-integrity-key", "--enable-webhook=false"}, args...)...)
	opts.webhookHost = "127.0.0.1"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, restConfig, opts) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller stopped with: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// publishRepo makes content at revision the artifact of GitRepository
// ns/repo, creating the source the first time.
func publishRepo(t *testing.T, ns, revision string, content map[string]string) {
	t.Helper()
	ctx := context.Background()
	artifact, err := env.Artifacts.Publish(fmt.Sprintf("%s/repo/%s.tar.gz", ns, revision), revision, content)
	if err != nil {
		t.Fatal(err)
	}
	src, err := testenv.NewSource(stagesetv1.GitRepositoryKind, ns, "repo")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(src), src); err != nil {
		if _, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, "repo", artifact); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := env.SetArtifact(ctx, src, artifact); err != nil {
		t.Fatal(err)
	}
}

func newStageSet(ns string, stages ...stagesetv1.Stage) *stagesetv1.StageSet {
	return &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:        metav1.Duration{Duration: time.Hour},
			Timeout:         &metav1.Duration{Duration: time.Minute},
			SourceRef:       &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			TargetNamespace: ns,
			Stages:          stages,
		},
	}
}

func readyOf(g Gomega, obj *stagesetv1.StageSet) func() string {
	return func() string {
		g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return testenv.ReadyReason(obj)
	}
}

const migrationJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: schema
  annotations: {stageset.io/migration: "1"}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "migrate:1"}]
`

func appConfigMap(value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  v: " + value + "\n"
}

// A controller restarted while a migration runs waits on the same Job
// instead of starting another, and a completed migration never runs again
// across a restart that also lost the StageSet's status.
func TestMigrationSurvivesControllerRestarts(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	publishRepo(t, ns, "rev-1", map[string]string{"db/migrate.yaml": migrationJob, "db/app.yaml": appConfigMap("one")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "db", Path: "./db"})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	stop := startController(t)
	job := &batchv1.Job{}
	jobKey := client.ObjectKey{Namespace: ns, Name: migration.JobName("app", "db", "1")}
	g.Eventually(func() error { return env.Client.Get(ctx, jobKey, job) }, testenv.Timeout, testenv.Poll).Should(Succeed())
	started := job.UID
	stop()

	// The restarted controller announcing the migration again proves it
	// reached it (the run ends, and records a request token, only once the
	// Job completes).
	stop = startController(t)
	g.Eventually(func() int32 { return eventCount(g, ns, stagesetv1.MigrationStartedReason) }, testenv.Timeout, testenv.Poll).Should(BeNumerically(">=", 2))
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	g.Expect(obj.Status.Stages[0].Phase).To(Equal(stagesetv1.StagePhaseMigrating))
	g.Consistently(func() []jobRef {
		return jobsIn(g, ns)
	}, "2s", testenv.Poll).Should(Equal([]jobRef{{name: jobKey.Name, uid: string(started)}}), "the restarted controller waits on the same Job")
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, &corev1.ConfigMap{})).NotTo(Succeed())

	g.Expect(testenv.FinishJob(ctx, env.Client, ns, jobKey.Name, true, "")).To(Succeed())
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	stop()

	// Restart with the status lost and a new revision: the ledger keeps the
	// migration from running again (a new Job would never complete here),
	// and the completed Job is cleaned up by the new rollout.
	obj.Status = stagesetv1.StageSetStatus{}
	g.Expect(env.Client.Status().Update(ctx, obj)).To(Succeed())
	publishRepo(t, ns, "rev-2", map[string]string{"db/migrate.yaml": migrationJob, "db/app.yaml": appConfigMap("two")})
	startController(t)
	g.Eventually(func() string {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return obj.Status.LastAppliedRevision
	}, testenv.Timeout, testenv.Poll).Should(Equal("rev-2"))
	g.Expect(jobsIn(g, ns)).To(BeEmpty())
	cm := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("v", "two"))
}

// requestReconcile sets the reconcile request token, as `flux reconcile` does.
func requestReconcile(g Gomega, obj *stagesetv1.StageSet, token string) {
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, meta.ReconcileRequestAnnotation, token))
	g.Expect(env.Client.Patch(context.Background(), obj, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
}

// eventCount adds up the counts of the Kubernetes Events of ns with reason.
func eventCount(g Gomega, ns, reason string) int32 {
	var events corev1.EventList
	g.Expect(env.Client.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var n int32
	for _, e := range events.Items {
		if e.Reason == reason {
			n += max(e.Count, 1)
		}
	}
	return n
}

type jobRef struct{ name, uid string }

// jobsIn lists the Jobs of ns that are not being deleted.
func jobsIn(g Gomega, ns string) []jobRef {
	var jobs batchv1.JobList
	g.Expect(env.Client.List(context.Background(), &jobs, client.InNamespace(ns))).To(Succeed())
	var out []jobRef
	for _, j := range jobs.Items {
		if j.DeletionTimestamp == nil {
			out = append(out, jobRef{name: j.Name, uid: string(j.UID)})
		}
	}
	return out
}

// An HTTP action reaches a loopback server only when --allowed-action-hosts
// allows it; with the flag empty, loopback and cloud metadata addresses are
// refused, and nothing is sent.
func TestAllowedActionHostsFlag(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	hits := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()

	withHook := func(ns, url string) *stagesetv1.StageSet {
		publishRepo(t, ns, "rev-1", map[string]string{"app.yaml": appConfigMap("one")})
		obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./", Actions: &stagesetv1.StageActions{
			Post: []stagesetv1.Action{{Name: "notify", HTTP: &stagesetv1.HTTPAction{URL: url}}},
		}})
		g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
		return obj
	}
	loopback := withHook(env.NewNamespace(t), srv.URL)
	metadata := withHook(env.NewNamespace(t), "http://169.254.169.254/latest/meta-data/")

	stop := startController(t)
	for obj, refused := range map[*stagesetv1.StageSet]string{loopback: "127.0.0.1", metadata: "169.254.169.254"} {
		g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/StageFailed"))
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
			ContainSubstring(`post actions: http action "notify"`), ContainSubstring(refused), ContainSubstring("refused by policy")))
	}
	g.Expect(hits.Load()).To(BeZero())
	stop()

	// Allowed by the flag, the loopback server is reached; the metadata
	// address still is not.
	startController(t, "--allowed-action-hosts=127.0.0.1")
	requestReconcile(g, loopback, "allowed")
	g.Eventually(readyOf(g, loopback), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	g.Expect(hits.Load()).To(Equal(int64(1)))
	requestReconcile(g, metadata, "allowed")
	g.Eventually(func() string {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(metadata), metadata)).To(Succeed())
		if metadata.Status.LastHandledReconcileAt != "allowed" {
			return ""
		}
		return conditions.GetMessage(metadata, meta.ReadyCondition)
	}, testenv.Timeout, testenv.Poll).Should(ContainSubstring("matches none of the allowed action hosts"))
	g.Expect(hits.Load()).To(Equal(int64(1)))
}

// A restarted controller has no memory of the inputs it applied: a
// substituteFrom value changed while it was down is found against the
// snapshot and rolled out as an update, not corrected as drift.
func TestSubstituteFromChangedWhileStoppedRollsOutAfterRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	vars := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vars"}, Data: map[string]string{"greeting": "hello"}}
	g.Expect(env.Client.Create(ctx, vars)).To(Succeed())
	publishRepo(t, ns, "rev-1", map[string]string{"app.yaml": appConfigMap("${greeting}")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./", PostBuild: &stagesetv1.PostBuild{
		SubstituteFrom: []stagesetv1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}},
	}})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	stop := startController(t)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	stop()

	vars.Data["greeting"] = "bonjour"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	startController(t)
	cm := &corev1.ConfigMap{}
	g.Eventually(func() string {
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)
		return cm.Data["v"]
	}, testenv.Timeout, testenv.Poll).Should(Equal("bonjour"))
	g.Consistently(func() []string {
		var events corev1.EventList
		g.Expect(env.Client.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		var reasons []string
		for _, e := range events.Items {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}, "2s", testenv.Poll).ShouldNot(ContainElement(stagesetv1.DriftCorrectedReason))
}

// --no-cross-namespace-refs decides whether a StageSet may read a source in
// another namespace: without it the shared source rolls out; with it the
// StageSet ends AccessDenied, Stalled, naming the source, nothing applied.
func TestNoCrossNamespaceRefsFlag(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	shared := env.NewNamespace(t)
	publishRepo(t, shared, "rev-1", map[string]string{"app/cm.yaml": appConfigMap("shared")})
	newApp := func() *stagesetv1.StageSet {
		obj := newStageSet(env.NewNamespace(t), stagesetv1.Stage{Name: "app", Path: "./app"})
		obj.Spec.SourceRef.Namespace = shared
		g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
		return obj
	}

	stop := startController(t)
	allowed := newApp()
	g.Eventually(readyOf(g, allowed), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	stop()

	startController(t, "--no-cross-namespace-refs")
	denied := newApp()
	g.Eventually(readyOf(g, denied), testenv.Timeout, testenv.Poll).Should(Equal("False/AccessDenied"))
	g.Expect(conditions.IsStalled(denied)).To(BeTrue())
	g.Expect(conditions.GetMessage(denied, meta.ReadyCondition)).To(ContainSubstring("GitRepository '" + shared + "/repo'"))
	cm := &corev1.ConfigMap{}
	err := env.Client.Get(ctx, types.NamespacedName{Namespace: denied.Namespace, Name: "app"}, cm)
	g.Expect(err).To(HaveOccurred(), "nothing applied")
}

// --max-objects-per-stage reaches the builds of the reconciler: a stage
// over the limit fails BuildFailed with nothing applied, and the same stage
// rolls out under the default.
func TestMaxObjectsPerStageFlagLimitsTheBuild(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	publishRepo(t, ns, "rev-1", map[string]string{
		"app/cm.yaml": appConfigMap("one"),
		"app/more.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: three}\n",
	})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	stop := startController(t, "--max-objects-per-stage=2")
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/BuildFailed"))
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(`stage path "./app" holds more than 2 objects`))
	err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "app"}, &corev1.ConfigMap{})
	g.Expect(err).To(HaveOccurred(), "nothing applied")
	stop()

	startController(t)
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	patch := client.MergeFrom(obj.DeepCopy())
	obj.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "now"}
	g.Expect(env.Client.Patch(ctx, obj, patch)).To(Succeed())
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
}
