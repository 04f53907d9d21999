package controller

import (
	"context"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// setClock makes the controller's clock read `at` now (and run on from
// there); the shift is undone when the test ends.
func setClock(t *testing.T, at time.Time) {
	clockShift.Store(int64(time.Until(at)))
	t.Cleanup(func() { clockShift.Store(0) })
}

// nextUTC returns the next time of day hh:mm:ss UTC after now.
func nextUTC(hh, mm, ss int) time.Time {
	now := time.Now().UTC()
	at := time.Date(now.Year(), now.Month(), now.Day(), hh, mm, ss, 0, time.UTC)
	if !at.After(now) {
		at = at.Add(24 * time.Hour)
	}
	return at
}

func TestUpdateWindowsDeferRolloutsUntilTheyOpen(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	// The only window: 03:00–04:00 UTC. The controller's clock reads five
	// seconds before it opens.
	opens := nextUTC(3, 0, 0)
	setClock(t, opens.Add(-5*time.Second))

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm", "v", "1")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetectionInterval = &metav1.Duration{Duration: 2 * time.Second}
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowAllow, Schedule: "0 3 * * *", Duration: metav1.Duration{Duration: time.Hour},
	}}
	create(t, obj)

	// Nothing applied yet: Ready=False UpdateDeferred, pending until 03:00.
	eventuallyReason(t, g, obj, "False/UpdateDeferred")
	g.Expect(obj.Status.PendingUpdate).NotTo(BeNil())
	g.Expect(obj.Status.PendingUpdate.NextWindowOpens.Time.Equal(opens)).To(BeTrue(), "next opening %s", obj.Status.PendingUpdate.NextWindowOpens)
	g.Expect(exists("v1", "ConfigMap", ns, "cm")()).To(BeFalse())

	// It rolls out when the window opens, requeued exactly then.
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.PendingUpdate).To(BeNil())
	g.Expect(exists("v1", "ConfigMap", ns, "cm")()).To(BeTrue())

	// Past the window: a new revision is deferred, Ready stays True.
	setClock(t, opens.Add(90*time.Minute))
	deferredBefore := series(g, "stageset_update_deferred_total", map[string]string{"namespace": ns, "name": "app"})
	src.publish("rev-2", files{"cm.yaml": configMap("cm", "v", "2")})
	g.Eventually(func() *stagesetv1.PendingUpdate { get(g, obj); return obj.Status.PendingUpdate }, timeout, poll).ShouldNot(BeNil())
	g.Expect(obj.Status.PendingUpdate.Revisions).To(HaveKeyWithValue("GitRepository/"+ns+"/repo", "rev-2"))
	g.Expect(readyReason(g, obj)()).To(Equal("True/Succeeded"))
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("revision rev-2 deferred: the next update window opens at " + opens.Add(24*time.Hour).Format(time.RFC3339)))

	// Drift of the applied revision is still corrected, from the snapshot.
	g.Expect(env.Client.Delete(ctx, configMapObj(ns, "cm"))).To(Succeed())
	g.Eventually(exists("v1", "ConfigMap", ns, "cm"), timeout, poll).Should(BeTrue())
	cm := configMapObj(ns, "cm")
	get(g, cm)
	g.Expect(cm.Data).To(HaveKeyWithValue("v", "1"), "the deferred revision is not applied")

	// One event and one count per deferred revision set, not per run.
	g.Consistently(func() int { return len(eventsWithReason(ns, "app", stagesetv1.UpdateDeferredReason)) }, "3s", poll).Should(Equal(2))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.UpdateDeferredReason)[0].Severity).To(Equal(eventv1.EventSeverityInfo),
		"the Ready=False UpdateDeferred of a first rollout is Normal, no failure")
	ev := eventsWithReason(ns, "app", stagesetv1.UpdateDeferredReason)[1]
	g.Expect(ev.Severity).To(Equal(eventv1.EventSeverityInfo))
	g.Expect(ev.Metadata).To(HaveKeyWithValue("stageset.io/revision", "rev-2"))
	deferredAfter := series(g, "stageset_update_deferred_total", map[string]string{"namespace": ns, "name": "app"})
	g.Expect(deferredAfter).To(HaveLen(1))
	g.Expect(deferredAfter[0] - deferredBefore[0]).To(Equal(1.0))

	// forceAt rolls the deferred revision out now, once.
	updateSpec(g, obj, func(obj *stagesetv1.StageSet) {
		obj.Annotations = map[string]string{meta.ForceRequestAnnotation: "now"}
	})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	g.Expect(obj.Status.LastHandledForceAt).To(Equal("now"))
	g.Expect(obj.Status.PendingUpdate).To(BeNil())

	// The token is spent: the next revision waits for a window again.
	src.publish("rev-3", files{"cm.yaml": configMap("cm", "v", "3")})
	g.Eventually(func() *stagesetv1.PendingUpdate { get(g, obj); return obj.Status.PendingUpdate }, timeout, poll).ShouldNot(BeNil())
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("rev-2"))
}

func TestInvalidWindowStalls(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowDeny, Schedule: "61 * * * *", Duration: metav1.Duration{Duration: time.Hour},
	}}
	create(t, obj)
	eventuallyReason(t, g, obj, "False/InvalidSpec")
	g.Expect(conditions.IsStalled(obj)).To(BeTrue())
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("updateWindows[0]"))
}

func TestSpecChangesAreDeferredOnlyWhenTheyChangeWhatIsApplied(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	opens := nextUTC(3, 0, 0)
	setClock(t, opens.Add(10*time.Minute)) // inside 03:00–04:00

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"a/cm.yaml": configMap("a"), "b/cm.yaml": configMap("b")})
	obj := newStageSet(ns, "app", src, stage("a", "./a"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowAllow, Schedule: "0 3 * * *", Duration: metav1.Duration{Duration: time.Hour},
	}}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	setClock(t, opens.Add(2*time.Hour)) // closed
	// A new interval changes nothing that is applied: it takes effect.
	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Interval = metav1.Duration{Duration: 2 * time.Hour} })
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.PendingUpdate).To(BeNil())

	// A new stage changes what is applied: it waits for the window.
	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Stages = append(obj.Spec.Stages, stage("b", "./b")) })
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.PendingUpdate).NotTo(BeNil())
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("deferred"))
	g.Consistently(exists("v1", "ConfigMap", ns, "b"), "1500ms", poll).Should(BeFalse())

	// The next runs in the closed window (here a requested one) keep it
	// deferred: the deferred change is not taken for drift to correct.
	requestReconcile(g, obj, "while-closed")
	g.Consistently(exists("v1", "ConfigMap", ns, "b"), "1500ms", poll).Should(BeFalse())
	get(g, obj)
	g.Expect(obj.Status.PendingUpdate).NotTo(BeNil())
}

// A changed substituteFrom value changes what is applied: outside the
// windows it waits like a new revision, and rolls out when one opens.
func TestSubstituteFromChangesWaitForAWindow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	opens := nextUTC(3, 0, 0)
	setClock(t, opens.Add(10*time.Minute)) // inside 03:00–04:00

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("app", "v", "${v}")})
	st, vars := substituteFromVars(t, ns, stage("a", "./"), map[string]string{"v": "one"})
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowAllow, Schedule: "0 3 * * *", Duration: metav1.Duration{Duration: time.Hour},
	}}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	setClock(t, opens.Add(24*time.Hour-5*time.Second)) // closed, five seconds before the next opening
	vars.Data["v"] = "two"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	g.Eventually(func() *stagesetv1.PendingUpdate { get(g, obj); return obj.Status.PendingUpdate }, timeout, poll).ShouldNot(BeNil())
	g.Expect(appData(g, ns)()).To(HaveKeyWithValue("v", "one"))

	// At the opening it rolls out.
	g.Eventually(appData(g, ns), timeout, poll).Should(HaveKeyWithValue("v", "two"))
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.PendingUpdate).To(BeNil())
}
