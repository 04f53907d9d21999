package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func TestObservedGenerationIsRecorded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)

	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: 60e9},
			SourceRef: &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			Stages:    []stagesetv1.Stage{{Name: "app"}},
		},
	}
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	observed := func() int64 {
		got := &stagesetv1.StageSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got)).To(Succeed())
		return got.Status.ObservedGeneration
	}
	g.Eventually(observed, testenv.Timeout, testenv.Poll).Should(Equal(int64(1)))

	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	obj.Spec.Suspend = true
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	g.Eventually(observed, testenv.Timeout, testenv.Poll).Should(Equal(int64(2)))

	// The status is written by the status field owner.
	got := &stagesetv1.StageSet{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), got)).To(Succeed())
	managers := map[string]bool{}
	for _, f := range got.ManagedFields {
		if f.Subresource == "status" {
			managers[f.Manager] = true
		}
	}
	g.Expect(managers).To(HaveKey(StatusManager))
}
