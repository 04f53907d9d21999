package controller

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestSuspendStopsReconcilingAndResumeContinues(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("one")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	get(g, obj)
	obj.Spec.Suspend = true
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	eventuallyReason(t, g, obj, "False/Suspended")

	src.publish("rev-2", files{"cm.yaml": configMap("two")})
	g.Consistently(exists("v1", "ConfigMap", ns, "two"), "1500ms", poll).Should(BeFalse(), "suspended: no rollout")
	g.Expect(exists("v1", "ConfigMap", ns, "one")()).To(BeTrue(), "suspended: applied objects stay")

	get(g, obj)
	obj.Spec.Suspend = false
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("rev-2"))
	g.Expect(exists("v1", "ConfigMap", ns, "two")()).To(BeTrue())
}

func TestRequestedAtTriggersARunAndIsRecorded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	// Drift: delete an applied object. Only a run brings it back, and with a
	// one-hour interval only the request triggers one.
	g.Expect(env.Client.Delete(ctx, configMapObj(ns, "cm"))).To(Succeed())
	g.Consistently(exists("v1", "ConfigMap", ns, "cm"), "1s", poll).Should(BeFalse())

	get(g, obj)
	obj.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "token-1"}
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	g.Eventually(func() string { get(g, obj); return obj.Status.LastHandledReconcileAt }, timeout, poll).Should(Equal("token-1"))
	g.Eventually(exists("v1", "ConfigMap", ns, "cm"), timeout, poll).Should(BeTrue())
}
