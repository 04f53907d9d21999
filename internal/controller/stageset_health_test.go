package controller

import (
	"context"
	"testing"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// A healthCheckExprs entry gates the next stage on a CEL expression, and a
// failed expression fails the stage without waiting for the timeout.
func TestHealthCheckExprsGateTheNextStage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"gate/cm.yaml": configMap("gate", "state", "starting"),
		"next/cm.yaml": configMap("next"),
	})
	gate := stage("gate", "./gate")
	gate.HealthCheckExprs = []kustomize.CustomHealthCheck{{
		APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{
			Current: "data.state == 'ready'",
			Failed:  "data.state == 'broken'",
		},
	}}
	obj := newStageSet(ns, "app", src, gate, stage("next", "./next"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	g.Eventually(func() stagesetv1.StagePhase {
		get(g, obj)
		if len(obj.Status.Stages) == 0 {
			return ""
		}
		return obj.Status.Stages[0].Phase
	}, timeout, poll).Should(Equal(stagesetv1.StagePhaseVerifying))
	g.Consistently(exists("v1", "ConfigMap", ns, "next"), "1500ms", poll).Should(BeFalse())

	cm := configMapObj(ns, "gate")
	get(g, cm)
	cm.Data["state"] = "ready"
	g.Expect(env.Client.Update(ctx, cm)).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(exists("v1", "ConfigMap", ns, "next")()).To(BeTrue())

	// A new revision whose gate reports broken fails fast.
	src.publish("rev-2", files{
		"gate/cm.yaml": configMap("gate", "state", "broken"),
		"next/cm.yaml": configMap("next"),
	})
	g.Eventually(readyReason(g, obj), "10s", poll).Should(Equal("False/StageFailed"))
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(HavePrefix(`stage "gate" failed: health check`))
	// Conditions and the rest of the status are two patches: wait for both.
	g.Eventually(func() stagesetv1.StagePhase { get(g, obj); return obj.Status.Stages[0].Phase }, "5s", poll).
		Should(Equal(stagesetv1.StagePhaseFailed))
}
