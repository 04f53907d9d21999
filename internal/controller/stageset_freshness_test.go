package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// A reconcile whose cache has not yet seen the last run's status reads the
// StageSet from the API server. Acting on the older status, it took the
// revision just applied for one still to roll out, and rolled it out again:
// its events and actions twice, forced applies undoing what changed since,
// the completed migration Jobs deleted. A request queued while the run was
// under way (here a substituteFrom ConfigMap touched, in the wild a source
// event that raced with the StageSet's creation) starts that reconcile the
// moment the run ends, before the informer has the run's last write.
func TestAStaleCachedStageSetIsReadAgain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"app/cm.yaml": configMap("app")})
	st, vars := substituteFromVars(t, ns, stage("app", "./app"), map[string]string{"x": "1"})
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	created := obj.ResourceVersion
	eventuallyReason(t, g, obj, "True/Succeeded")
	applied := func() int {
		n := 0
		for _, e := range notifications.For(ns, "app") {
			if strings.HasPrefix(e.Message, "Applied revision: rev-1") {
				n++
			}
		}
		return n
	}
	g.Eventually(applied, timeout, poll).Should(Equal(1))
	runs := func() float64 {
		var sum float64
		for _, v := range series(g, "stageset_reconcile_total", map[string]string{"namespace": ns, "name": "app"}) {
			sum += v
		}
		return sum
	}
	before := runs()

	// What an informer a write behind holds: the finalizer, no status yet.
	stale := obj.DeepCopy()
	stale.Status = stagesetv1.StageSetStatus{}
	stale.ResourceVersion = created
	lagging.serveOnce(stale)
	touched := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vars), touched)).To(Succeed())
	touched.Labels = map[string]string{"touched": "yes"}
	g.Expect(env.Client.Update(ctx, touched)).To(Succeed())

	g.Eventually(func() bool { return lagging.served(client.ObjectKeyFromObject(obj)) }, timeout, poll).Should(BeTrue())
	g.Eventually(runs, timeout, poll).Should(BeNumerically(">", before))
	g.Consistently(applied, 2*time.Second, poll).Should(Equal(1), "rev-1 was rolled out again")
	eventuallyReason(t, g, obj, "True/Succeeded")
}

// A cached StageSet is read again only when it may be older than the last
// write: not when nothing was written, nor when another writer's change
// made it newer.
func TestKnownVersions(t *testing.T) {
	key := types.NamespacedName{Namespace: "ns", Name: "app"}
	var k knownVersions
	if !k.current(key, "10") {
		t.Error("nothing written yet: the cache is as new as anything known")
	}
	k.set(key, "10")
	for rv, want := range map[string]bool{"10": true, "11": true, "100": true, "9": false, "": false, "not-a-number": false} {
		if got := k.current(key, rv); got != want {
			t.Errorf("last write 10, cached %q: current %v, want %v", rv, got, want)
		}
	}
	k.set(key, "opaque")
	if !k.current(key, "opaque") || k.current(key, "11") {
		t.Error("a resourceVersion that is not a number is only compared for equality")
	}
	k.forget(key)
	if !k.current(key, "1") {
		t.Error("forgotten: nothing known")
	}
}
