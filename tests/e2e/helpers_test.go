package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

const (
	timeout = 2 * time.Minute
	poll    = 250 * time.Millisecond
)

type files map[string]string

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testenv.RandomName("e2e")}}
	if err := cluster.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// gitRepo is the GitRepository ns/repo, whose artifacts the test
// publishes as source-controller would.
type gitRepo struct {
	t    *testing.T
	repo *testenv.Repo
}

func newGitRepo(t *testing.T, ns, revision string, content files) *gitRepo {
	t.Helper()
	repo, err := testenv.NewRepo(context.Background(), cluster.Client, artifacts, stagesetv1.GitRepositoryKind, ns, "repo", revision, content)
	if err != nil {
		t.Fatal(err)
	}
	return &gitRepo{t: t, repo: repo}
}

func (r *gitRepo) publish(revision string, content files) {
	r.t.Helper()
	if err := r.repo.Publish(context.Background(), revision, content); err != nil {
		r.t.Fatal(err)
	}
}

func newStageSet(t *testing.T, ns string, stageTimeout time.Duration, stages ...stagesetv1.Stage) *stagesetv1.StageSet {
	t.Helper()
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:        metav1.Duration{Duration: time.Hour},
			Timeout:         &metav1.Duration{Duration: stageTimeout},
			SourceRef:       &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			TargetNamespace: ns,
			Stages:          stages,
		},
	}
	if err := cluster.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

func stage(name, path string) stagesetv1.Stage { return stagesetv1.Stage{Name: name, Path: path} }

func get(g Gomega, obj client.Object) {
	g.Expect(cluster.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
}

// readyReason reports "<status>/<reason>" of Ready once the generation is
// observed (testenv.ReadyReason).
func readyReason(g Gomega, obj *stagesetv1.StageSet) func() string {
	return func() string {
		get(g, obj)
		return testenv.ReadyReason(obj)
	}
}

func message(obj *stagesetv1.StageSet) string {
	return conditions.GetMessage(obj, meta.ReadyCondition)
}

func deployment(name, image string, replicas int, podLabels string) string {
	return deploymentWith(name, image, replicas, podLabels, 0)
}

// deploymentWith is deployment with minReadySeconds: pods count as available
// only after being Ready that long.
func deploymentWith(name, image string, replicas int, podLabels string, minReadySeconds int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
spec:
  replicas: %[3]d
  minReadySeconds: %[5]d
  progressDeadlineSeconds: 15
  selector:
    matchLabels: {app: %[1]s}
  strategy:
    rollingUpdate: {maxUnavailable: 0, maxSurge: 1}
  template:
    metadata:
      labels: {app: %[1]s%[4]s}
    spec:
      automountServiceAccountToken: false
      containers:
        - name: main
          image: %[2]s
`, name, image, replicas, podLabels, minReadySeconds)
}

func configMap(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata: {k: v}\n", name)
}
