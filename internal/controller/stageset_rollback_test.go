package controller

import (
	"context"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// gatedStage is a stage whose ConfigMap "gate" fails its health check when
// its state is "broken".
func gatedStage(name, path string) stagesetv1.Stage {
	st := stage(name, path)
	st.HealthCheckExprs = []kustomize.CustomHealthCheck{{
		APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{
			Current: "!has(data.state) || data.state != 'broken'",
			Failed:  "has(data.state) && data.state == 'broken'",
		},
	}}
	return st
}

func TestFailedRolloutRollsBackAndIsHeld(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"a/cm.yaml": configMap("a", "v", "1"),
		"b/cm.yaml": configMap("gate", "state", "fine"),
		"c/cm.yaml": configMap("c", "v", "1"),
	})
	obj := newStageSet(ns, "app", src, stage("a", "./a"), gatedStage("b", "./b"), stage("c", "./c"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	obj.Spec.DriftDetectionInterval = &metav1.Duration{Duration: 2 * time.Second}
	// The first held run comes a second after the rollback.
	obj.Spec.RetryInterval = &metav1.Duration{Duration: time.Second}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	src.publish("rev-2", files{
		"a/cm.yaml":    configMap("a", "v", "2"),
		"a/added.yaml": configMap("added"),
		"b/cm.yaml":    configMap("gate", "state", "broken"),
		"c/cm.yaml":    configMap("c", "v", "2"),
	})
	eventuallyReason(t, g, obj, "False/RolledBack")
	msg := conditions.GetMessage(obj, meta.ReadyCondition)
	g.Expect(msg).To(ContainSubstring(`rollout of revision rev-2 failed at stage "b"`))
	g.Expect(msg).To(ContainSubstring("rolled back to revision rev-1"))

	a, gate, c := configMapObj(ns, "a"), configMapObj(ns, "gate"), configMapObj(ns, "c")
	get(g, a)
	get(g, gate)
	get(g, c)
	g.Expect(a.Data).To(HaveKeyWithValue("v", "1"), "stage a restored")
	g.Expect(gate.Data).To(HaveKeyWithValue("state", "fine"), "stage b restored")
	g.Expect(c.Data).To(HaveKeyWithValue("v", "1"), "stage c was never touched")
	g.Expect(exists("v1", "ConfigMap", ns, "added")()).To(BeFalse(), "what the failed rollout added is pruned")
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("rev-1"))
	g.Expect(obj.Status.LastAttemptedRevision).To(Equal("rev-2"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.RolledBackReason) }, timeout, poll).Should(HaveLen(1))

	// Held: runs every two seconds neither retry rev-2 nor roll back again.
	g.Consistently(func() string { get(g, gate); return gate.Data["state"] }, "6s", poll).Should(Equal("fine"))
	g.Expect(readyReason(g, obj)()).To(Equal("False/RolledBack"))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.RolledBackReason)).To(HaveLen(1), "no apply/rollback loop")
	// Each held run carries the message over: its runbook link stays one.
	checkRunbookLink(g, obj)
	g.Expect(eventsWithReason(ns, "app", stagesetv1.RolledBackReason)[0].Message).To(HaveSuffix(" (runbook: " + testRunbookBase + "/rolledback/)"))

	// A new revision rolls out normally.
	src.publish("rev-3", files{
		"a/cm.yaml": configMap("a", "v", "3"),
		"b/cm.yaml": configMap("gate", "state", "fine"),
		"c/cm.yaml": configMap("c", "v", "3"),
	})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-3"))
	eventuallyReason(t, g, obj, "True/Succeeded")
	get(g, c)
	g.Expect(c.Data).To(HaveKeyWithValue("v", "3"))
}

func TestFirstRolloutFailureHasNothingToRollBackTo(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"b/cm.yaml": configMap("gate", "state", "broken")})
	obj := newStageSet(ns, "app", src, gatedStage("b", "./b"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)
	eventuallyReason(t, g, obj, "False/StageFailed")
}

// A stage that the failed rollout added has nothing in the snapshot: the
// rollback deletes what it applied and records an empty inventory (a nil
// list of entries was refused by the API server, so the rollback was
// retried for ever instead of ending RolledBack).
func TestRollbackOfAnAddedStageLeavesItEmpty(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"a/cm.yaml": configMap("a", "v", "1"),
		"b/cm.yaml": configMap("gate", "state", "broken"),
	})
	obj := newStageSet(ns, "app", src, stage("a", "./a"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	get(g, obj)
	obj.Spec.Stages = append(obj.Spec.Stages, gatedStage("b", "./b"))
	g.Expect(env.Client.Update(context.Background(), obj)).To(Succeed())
	eventuallyReason(t, g, obj, "False/RolledBack")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(`failed at stage "b"`))
	g.Expect(exists("v1", "ConfigMap", ns, "gate")()).To(BeFalse(), "what the failed rollout applied in the new stage is deleted")
	g.Expect(exists("v1", "ConfigMap", ns, "a")()).To(BeTrue())
	g.Expect(obj.Status.Stages).To(ContainElement(And(
		HaveField("Name", "b"), HaveField("Inventory", Not(BeNil())), HaveField("Inventory.Entries", BeEmpty()),
		HaveField("Message", "Emptied: the stage is new in the failed revision"))))
}

// A substituteFrom value that fails a rollout is rolled back and held like
// a bad revision; fixing the value lifts the hold and rolls it out.
func TestFixedSubstituteFromValueLiftsTheHold(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("gate", "state", "${state}")})
	st, vars := substituteFromVars(t, ns, gatedStage("b", "./"), map[string]string{"state": "fine"})
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	vars.Data["state"] = "broken"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	eventuallyReason(t, g, obj, "False/RolledBack")
	gate := configMapObj(ns, "gate")
	get(g, gate)
	g.Expect(gate.Data).To(HaveKeyWithValue("state", "fine"))

	vars.Data["state"] = "mended"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	get(g, gate)
	g.Expect(gate.Data).To(HaveKeyWithValue("state", "mended"))
}
