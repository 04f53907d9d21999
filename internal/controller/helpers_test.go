package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/conditions/check"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/runbook"
	"github.com/stageset/stageset-controller/internal/testenv"
)

const (
	timeout = testenv.Timeout
	poll    = testenv.Poll
)

// files is the content of an artifact: path → file content.
type files map[string]string

// repo is a source in a test namespace whose artifact the test publishes.
type repo struct {
	t    *testing.T
	kind string
	ns   string
	name string
	src  testenv.Source
}

// newRepo creates a source of the kind serving files at revision.
func newRepo(t *testing.T, kind, ns, name, revision string, content files) *repo {
	t.Helper()
	r := &repo{t: t, kind: kind, ns: ns, name: name}
	artifact, err := env.Artifacts.Publish(r.path(revision), revision, content)
	if err != nil {
		t.Fatal(err)
	}
	if r.src, err = env.CreateSource(context.Background(), kind, ns, name, artifact); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *repo) path(revision string) string {
	return fmt.Sprintf("%s/%s/%s/%s.tar.gz", r.kind, r.ns, r.name, revision)
}

// publish makes revision with content the source's current artifact.
func (r *repo) publish(revision string, content files) {
	r.t.Helper()
	artifact, err := env.Artifacts.Publish(r.path(revision), revision, content)
	if err != nil {
		r.t.Fatal(err)
	}
	r.setArtifact(artifact)
}

func (r *repo) setArtifact(artifact *meta.Artifact) {
	r.t.Helper()
	ctx := context.Background()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(r.src), r.src); err != nil {
		r.t.Fatal(err)
	}
	if err := env.SetArtifact(ctx, r.src, artifact); err != nil {
		r.t.Fatal(err)
	}
}

func (r *repo) ref() *stagesetv1.SourceReference {
	return &stagesetv1.SourceReference{Kind: r.kind, Name: r.name}
}

// newStageSet returns a StageSet over src with the stages (name → path).
func newStageSet(ns, name string, src *repo, stages ...stagesetv1.Stage) *stagesetv1.StageSet {
	return &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: time.Hour},
			Timeout:   &metav1.Duration{Duration: 20 * time.Second},
			SourceRef: src.ref(),
			Stages:    stages,
		},
	}
}

func stage(name, path string) stagesetv1.Stage {
	return stagesetv1.Stage{Name: name, Path: path}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// get refreshes obj, failing the test on error.
func get(g Gomega, obj client.Object) {
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
}

// readyReason returns the Ready condition's status and reason once the
// controller observed the StageSet's generation.
func readyReason(g Gomega, obj *stagesetv1.StageSet) func() string {
	return func() string {
		get(g, obj)
		return testenv.ReadyReason(obj)
	}
}

// testRunbookBase is the --runbook-base-url of the test reconciler.
const testRunbookBase = "https://runbooks.test/stageset"

// eventuallyReason waits for the Ready status and reason ("False/BuildFailed"),
// and checks kstatus conformance of the status and the runbook link of the
// Ready message.
func eventuallyReason(t *testing.T, g Gomega, obj *stagesetv1.StageSet, want string) {
	t.Helper()
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal(want), func() string {
		return fmt.Sprintf("Ready message: %q", conditions.GetMessage(obj, meta.ReadyCondition))
	})
	checkStatus(g, obj)
	checkRunbookLink(g, obj)
}

// checkRunbookLink checks that the Ready message ends with the runbook link
// of its reason exactly once when the reason calls for action, and has none
// otherwise (Succeeded, Suspended, Progressing).
func checkRunbookLink(g Gomega, obj *stagesetv1.StageSet) {
	reason, message := conditions.GetReason(obj, meta.ReadyCondition), conditions.GetMessage(obj, meta.ReadyCondition)
	if !slices.Contains(runbook.Reasons, reason) {
		g.Expect(message).NotTo(ContainSubstring("(runbook: "), "reason %s calls for no runbook", reason)
		return
	}
	link := " (runbook: " + testRunbookBase + "/" + strings.ToLower(reason) + "/)"
	g.Expect(message).To(HaveSuffix(link))
	g.Expect(strings.Count(message, "(runbook: ")).To(Equal(1), "one link in %q", message)
}

// checkStatus runs fluxcd/pkg/runtime/conditions/check (kstatus conformance).
func checkStatus(g Gomega, obj *stagesetv1.StageSet) {
	checker := check.NewChecker(env.Client, &check.Conditions{
		NegativePolarity: []string{meta.StalledCondition, meta.ReconcilingCondition},
	})
	fail, _ := checker.Check(context.Background(), obj)
	g.Expect(fail).NotTo(HaveOccurred())
}

// exists tells whether an object exists in the cluster.
func exists(apiVersion, kind, ns, name string) func() bool {
	return func() bool {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(apiVersion)
		u.SetKind(kind)
		err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)
		return err == nil
	}
}

func configMap(name string, data ...string) string {
	out := fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n", name)
	if len(data) == 0 {
		return out + "  k: v\n"
	}
	for i := 0; i+1 < len(data); i += 2 {
		out += fmt.Sprintf("  %s: %q\n", data[i], data[i+1])
	}
	return out
}

func objKey(obj client.Object) client.ObjectKey { return client.ObjectKeyFromObject(obj) }

func configMapObj(ns, name string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// deletionOrder watches ConfigMaps in ns and returns a function that reports
// the names deleted so far, in the order the API server deleted them (the
// order of their DELETED watch events, which follows etcd's revisions).
func deletionOrder(t *testing.T, ns string) func() []string {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := wc.Watch(context.Background(), &corev1.ConfigMapList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var deleted []string
	go func() {
		for ev := range w.ResultChan() {
			if ev.Type != watch.Deleted {
				continue
			}
			if cm, ok := ev.Object.(*corev1.ConfigMap); ok {
				mu.Lock()
				deleted = append(deleted, cm.Name)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), deleted...)
	}
}

// updateSpec reads obj, changes it with mutate and writes it, again when a
// status write of the controller raced the update (a conflict).
func updateSpec(g Gomega, obj *stagesetv1.StageSet, mutate func(*stagesetv1.StageSet)) {
	g.Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return env.Client.Update(context.Background(), obj)
	})).To(Succeed())
}

// replaceOnce replaces the first old in s.
func replaceOnce(s, old, new string) string { return strings.Replace(s, old, new, 1) }

// requestReconcile stamps a new requestedAt token and waits until a run
// handled it.
func requestReconcile(g Gomega, obj *stagesetv1.StageSet, token string) {
	get(g, obj)
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations[meta.ReconcileRequestAnnotation] = token
	g.Expect(env.Client.Update(context.Background(), obj)).To(Succeed())
	g.Eventually(func() string { get(g, obj); return obj.Status.LastHandledReconcileAt }, timeout, poll).Should(Equal(token))
}

// readyStageSet creates a GitRepository serving content at rev-1 and a
// StageSet "app" over it with the stages, targeting ns, and waits until it is
// Ready.
func readyStageSet(t *testing.T, g Gomega, ns string, content files, stages ...stagesetv1.Stage) (*repo, *stagesetv1.StageSet) {
	t.Helper()
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", content)
	obj := newStageSet(ns, "app", src, stages...)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")
	return src, obj
}
