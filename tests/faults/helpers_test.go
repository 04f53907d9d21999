package faults

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

const (
	timeout = 3 * time.Minute
	poll    = 250 * time.Millisecond
)

type files map[string]string

func newNamespace(t *testing.T) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testenv.RandomName("faults")}}
	if err := kube.Create(context.Background(), ns); err != nil {
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
	repo, err := testenv.NewRepo(context.Background(), kube, artifacts, stagesetv1.GitRepositoryKind, ns, "repo", revision, content)
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

// newStageSet is StageSet ns/app of the GitRepository ns/repo.
func newStageSet(ns string, stages ...stagesetv1.Stage) *stagesetv1.StageSet {
	return &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:        metav1.Duration{Duration: time.Hour},
			Timeout:         &metav1.Duration{Duration: 2 * time.Minute},
			SourceRef:       &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			TargetNamespace: ns,
			Stages:          stages,
		},
	}
}

// stage is a stage of the folder of its name.
func stage(name string) stagesetv1.Stage { return stagesetv1.Stage{Name: name, Path: "./" + name} }

func get(g Gomega, obj client.Object) {
	g.Expect(kube.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
}

func readyOf(obj *stagesetv1.StageSet) string { return testenv.ReadyReason(obj) }

func message(obj *stagesetv1.StageSet) string {
	return conditions.GetMessage(obj, meta.ReadyCondition)
}

// jobWatch records every Job created in a namespace, from a watch that
// resumes where it stopped: a Job created and deleted between two looks is
// still seen.
type jobWatch struct {
	mu sync.Mutex
	// uids are the distinct Jobs seen under each name.
	uids map[string]map[types.UID]bool
}

func watchJobs(t *testing.T, ns string) *jobWatch {
	t.Helper()
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	list, err := clientset.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return clientset.BatchV1().Jobs(ns).Watch(ctx, opts)
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	j := &jobWatch{uids: map[string]map[types.UID]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				t.Errorf("watching Jobs: %v", ev.Object)
				continue
			}
			if obj, ok := ev.Object.(metav1.Object); ok {
				j.record(obj)
			}
		}
	}()
	t.Cleanup(func() {
		w.Stop()
		cancel()
		<-done
	})
	return j
}

func (j *jobWatch) record(obj metav1.Object) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.uids[obj.GetName()] == nil {
		j.uids[obj.GetName()] = map[types.UID]bool{}
	}
	j.uids[obj.GetName()][obj.GetUID()] = true
}

// created is how many Jobs were created under name.
func (j *jobWatch) created(name string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.uids[name])
}

// createdWithPrefix is how many Jobs were created under names starting
// with prefix.
func (j *jobWatch) createdWithPrefix(prefix string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := 0
	for name, uids := range j.uids {
		if strings.HasPrefix(name, prefix) {
			n += len(uids)
		}
	}
	return n
}

func (j *jobWatch) total() int { return j.createdWithPrefix("") }

func (j *jobWatch) names() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Sorted(maps.Keys(j.uids))
}
