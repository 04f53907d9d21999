package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestSuspendStopsReconcilingAndResumeContinues(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src, obj := readyStageSet(t, g, ns, files{"cm.yaml": configMap("one")}, stage("a", "./"))

	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Suspend = true })
	eventuallyReason(t, g, obj, "False/Suspended")

	src.publish("rev-2", files{"cm.yaml": configMap("two")})
	g.Consistently(exists("v1", "ConfigMap", ns, "two"), "1500ms", poll).Should(BeFalse(), "suspended: no rollout")
	g.Expect(exists("v1", "ConfigMap", ns, "one")()).To(BeTrue(), "suspended: applied objects stay")

	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Suspend = false })
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("rev-2"))
	g.Expect(exists("v1", "ConfigMap", ns, "two")()).To(BeTrue())
}

func TestRequestedAtTriggersARunAndIsRecorded(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	_, obj := readyStageSet(t, g, ns, files{"cm.yaml": configMap("cm")}, stage("a", "./"))

	// Drift: delete an applied object. Only a run brings it back, and with a
	// one-hour interval only the request triggers one.
	g.Expect(env.Client.Delete(ctx, configMapObj(ns, "cm"))).To(Succeed())
	g.Consistently(exists("v1", "ConfigMap", ns, "cm"), "1s", poll).Should(BeFalse())

	requestReconcile(g, obj, "token-1")
	g.Eventually(exists("v1", "ConfigMap", ns, "cm"), timeout, poll).Should(BeTrue())
}
