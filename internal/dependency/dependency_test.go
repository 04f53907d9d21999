package dependency

import (
	"context"
	"errors"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func stageSet(namespace, name string, deps ...meta.DependencyReference) *stagesetv1.StageSet {
	return &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: stagesetv1.StageSetSpec{DependsOn: deps}}
}

func graph(objs ...*stagesetv1.StageSet) Getter {
	byKey := map[client.ObjectKey]*stagesetv1.StageSet{}
	for _, o := range objs {
		byKey[client.ObjectKeyFromObject(o)] = o
	}
	return func(_ context.Context, key client.ObjectKey) (*stagesetv1.StageSet, error) {
		return byKey[key], nil
	}
}

func TestFindCycle(t *testing.T) {
	ctx := context.Background()
	a := stageSet("ns", "a", meta.DependencyReference{Name: "b"})
	b := stageSet("ns", "b", meta.DependencyReference{Name: "missing"}, meta.DependencyReference{Name: "c", Namespace: "other"})
	c := stageSet("other", "c", meta.DependencyReference{Name: "a", Namespace: "ns"})
	tests := []struct {
		name              string
		get               Getter
		sameNamespaceOnly bool
		want              string
	}{
		{"a cycle across namespaces, past a missing StageSet", graph(a, b, c), false, "ns/a -> ns/b -> other/c -> ns/a"},
		{"an edge refused by --no-cross-namespace-refs closes no cycle", graph(a, b, c), true, ""},
		{"no cycle", graph(a, b), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			got, err := FindCycle(ctx, a, tt.get, tt.sameNamespaceOnly)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(tt.want))
		})
	}

	g := NewWithT(t)
	failing := func(context.Context, client.ObjectKey) (*stagesetv1.StageSet, error) { return nil, errors.New("boom") }
	_, err := FindCycle(ctx, a, failing, false)
	g.Expect(err).To(MatchError("boom"))
}

func TestReady(t *testing.T) {
	ctx := context.Background()
	self := stageSet("ns", "app")
	dep := stageSet("ns", "db")
	dep.Generation, dep.Status.ObservedGeneration = 2, 1
	conditions.MarkTrue(dep, meta.ReadyCondition, stagesetv1.SucceededReason, "done")
	g := NewWithT(t)

	ready, err := Ready(ctx, self, dep, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ready).To(BeFalse(), "Ready at an older generation is not ready")

	dep.Status.ObservedGeneration = 2
	ready, err = Ready(ctx, self, dep, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ready).To(BeTrue())

	dep.Status.LastAppliedRevision = "v1"
	ready, err = Ready(ctx, self, dep, "dep.status.lastAppliedRevision == 'v1' && self.metadata.name == 'app'")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ready).To(BeTrue())

	ready, err = Ready(ctx, self, dep, "dep.status.noSuchField == 'x'")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ready).To(BeFalse(), "a field not there yet keeps waiting")

	_, err = Ready(ctx, self, dep, "dep.status.(")
	g.Expect(err).To(MatchError(ContainSubstring("invalid readyExpr")))
}
