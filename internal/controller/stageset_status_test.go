package controller

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Every version of the status a reader can see is whole: a Ready=True
// condition comes with every stage Ready and the applied revision, in the
// same write. The watch sees every version the API server stores.
func TestStatusIsWrittenWhole(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	w, err := wc.Watch(context.Background(), &stagesetv1.StageSetList{}, client.InNamespace(ns))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(w.Stop)
	var mu sync.Mutex
	var torn []string
	versions := 0
	go func() {
		for ev := range w.ResultChan() {
			obj, ok := ev.Object.(*stagesetv1.StageSet)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			mu.Lock()
			versions++
			if conditions.IsReady(obj) {
				for _, st := range obj.Status.Stages {
					if st.Phase != stagesetv1.StagePhaseReady {
						torn = append(torn, fmt.Sprintf("resourceVersion %s: Ready=True with stage %q %s", obj.ResourceVersion, st.Name, st.Phase))
					}
				}
				if obj.Status.LastAppliedRevision == "" {
					torn = append(torn, fmt.Sprintf("resourceVersion %s: Ready=True without lastAppliedRevision", obj.ResourceVersion))
				}
			}
			mu.Unlock()
		}
	}()

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"a/cm.yaml": configMap("a"), "b/cm.yaml": configMap("b"), "c/cm.yaml": configMap("c")})
	obj := newStageSet(ns, "app", src, stage("a", "./a"), stage("b", "./b"), stage("c", "./c"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(Equal("Applied revision: rev-1 (3 stages)"))

	src.publish("rev-2", files{"a/cm.yaml": configMap("a", "v", "2"), "b/cm.yaml": configMap("b"), "c/cm.yaml": configMap("c")})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	eventuallyReason(t, g, obj, "True/Succeeded")

	mu.Lock()
	defer mu.Unlock()
	g.Expect(versions).To(BeNumerically(">", 4), "the watch saw the progress of both rollouts")
	g.Expect(torn).To(BeEmpty())
}
