package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func eventsWithReason(ns, name, reason string) []eventv1.Event {
	var out []eventv1.Event
	for _, e := range notifications.For(ns, name) {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func driftMetric(g Gomega, ns, name, stage string) float64 {
	values := series(g, "stageset_drift_corrected_total", map[string]string{"namespace": ns, "name": name, "stage": stage})
	if len(values) == 0 {
		return 0
	}
	return values[0]
}

func TestDriftIsCorrectedReportedAndCounted(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"a/cm.yaml": configMap("edited", "k", "v"), "a/gone.yaml": configMap("gone"), "b/cm.yaml": configMap("still"),
	})
	obj := newStageSet(ns, "app", src, stage("a", "./a"), stage("b", "./b"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")
	downloads := env.Artifacts.Requests(src.path("rev-1"))

	// A steady-state run with no drift: no event, no write, no count.
	still := configMapObj(ns, "still")
	get(g, still)
	rv := still.ResourceVersion
	requestReconcile(g, obj, "steady-1")
	get(g, still)
	g.Expect(still.ResourceVersion).To(Equal(rv), "an unchanged object is not written")
	g.Expect(eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)).To(BeEmpty())
	g.Expect(driftMetric(g, ns, "app", "a")).To(BeZero())
	g.Expect(env.Artifacts.Requests(src.path("rev-1"))).To(Equal(downloads), "a steady-state run reuses the last build")

	// Out of band: one object edited, one deleted.
	edited := configMapObj(ns, "edited")
	get(g, edited)
	edited.Data["k"] = "changed by hand"
	g.Expect(env.Client.Update(ctx, edited)).To(Succeed())
	g.Expect(env.Client.Delete(ctx, configMapObj(ns, "gone"))).To(Succeed())

	requestReconcile(g, obj, "steady-2")
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason) }, timeout, poll).Should(HaveLen(1))
	ev := eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)[0]
	g.Expect(ev.Severity).To(Equal(eventv1.EventSeverityError))
	g.Expect(ev.Message).To(Equal(`Drift corrected: stage "a": ConfigMap/` + ns + `/edited, ConfigMap/` + ns + `/gone`))
	g.Expect(driftMetric(g, ns, "app", "a")).To(Equal(2.0))
	g.Expect(driftMetric(g, ns, "app", "b")).To(BeZero())
	get(g, edited)
	g.Expect(edited.Data).To(HaveKeyWithValue("k", "v"))
	g.Expect(exists("v1", "ConfigMap", ns, "gone")()).To(BeTrue(), "recreated")
	get(g, obj)
	g.Expect(obj.Status.History).To(HaveLen(1), "a steady-state run is not a rollout")
}

func TestWarnModeReportsDriftAndEnabledReportsItsCorrection(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("watched", "k", "v")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetection = &stagesetv1.DriftDetection{Mode: stagesetv1.DriftDetectionWarn}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	cm := configMapObj(ns, "watched")
	get(g, cm)
	cm.Data["k"] = "by hand"
	g.Expect(env.Client.Update(ctx, cm)).To(Succeed())
	requestReconcile(g, obj, "warn-1")

	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.DriftDetectedReason) }, timeout, poll).Should(HaveLen(1))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.DriftDetectedReason)[0].Message).To(ContainSubstring("ConfigMap/" + ns + "/watched"))
	get(g, cm)
	g.Expect(cm.Data).To(HaveKeyWithValue("k", "by hand"), "Warn does not correct")
	g.Expect(driftMetric(g, ns, "app", "a")).To(BeZero())
	g.Expect(eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)).To(BeEmpty())
	eventuallyReason(t, g, obj, "True/Succeeded")

	// Switching to Enabled reverts the drift the user was warned about:
	// reported as corrected (event naming the object, the counter), not
	// done silently by a run that the spec change made no longer steady.
	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.DriftDetection.Mode = stagesetv1.DriftDetectionEnabled })
	g.Eventually(func() string { get(g, cm); return cm.Data["k"] }, timeout, poll).Should(Equal("v"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason) }, timeout, poll).Should(HaveLen(1))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)[0].Message).To(ContainSubstring("ConfigMap/" + ns + "/watched"))
	g.Expect(driftMetric(g, ns, "app", "a")).To(Equal(1.0))
	// A mode switch is no rollout: no Succeeded event for it.
	g.Expect(eventsWithReason(ns, "app", stagesetv1.SucceededReason)).To(HaveLen(1))
}

// Warn mode leaves the drift in place: every steady run finds it again, and
// the DriftDetected event says it once, not once per run; a drift that went
// away and came back is news again.
func TestWarnModeReportsTheSameDriftOnce(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("watched", "k", "v")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetection = &stagesetv1.DriftDetection{Mode: stagesetv1.DriftDetectionWarn}
	obj.Spec.DriftDetectionInterval = &metav1.Duration{Duration: time.Second}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	setValue := func(v string) {
		cm := configMapObj(ns, "watched")
		get(g, cm)
		cm.Data["k"] = v
		g.Expect(env.Client.Update(ctx, cm)).To(Succeed())
	}
	detected := func() int { return len(eventsWithReason(ns, "app", stagesetv1.DriftDetectedReason)) }
	setValue("by hand")
	g.Eventually(detected, timeout, poll).Should(Equal(1))
	g.Consistently(detected, "4s", poll).Should(Equal(1), "steady runs every second find the same drift")

	// Put right by hand, then drifted again: reported again.
	setValue("v")
	mark := testenv.Logs.Mark()
	g.Eventually(func() int { // two runs end after it: one found no drift
		entries, _ := testenv.Logs.Since(mark, func(e map[string]any) bool {
			msg, _ := e["msg"].(string)
			return e["namespace"] == ns && e["name"] == "app" && strings.HasPrefix(msg, "Reconciliation finished in ")
		})
		return len(entries)
	}, timeout, poll).Should(BeNumerically(">=", 2))
	setValue("by hand again")
	g.Eventually(detected, timeout, poll).Should(Equal(2))
}

// A spec change that changes what is applied at the same revision (here a
// patch) is announced like an update: a Succeeded event, not drift.
func TestSpecChangeThatConfiguresObjectsIsAnnouncedAsAnUpdate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	_, obj := readyStageSet(t, g, ns, files{"cm.yaml": configMap("cm", "k", "v")}, stage("a", "./"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.SucceededReason) }, timeout, poll).Should(HaveLen(1))

	get(g, obj)
	obj.Spec.Stages[0].Patches = []kustomize.Patch{{
		Patch:  `[{"op": "replace", "path": "/data/k", "value": "patched"}]`,
		Target: &kustomize.Selector{Kind: "ConfigMap", Name: "cm"},
	}}
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())
	cm := configMapObj(ns, "cm")
	g.Eventually(func() string { get(g, cm); return cm.Data["k"] }, timeout, poll).Should(Equal("patched"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.SucceededReason) }, timeout, poll).Should(HaveLen(2))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)).To(BeEmpty(), "an update is no drift")
}

func TestDisabledModeAppliesOnlyNewRevisions(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm", "k", "v")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetection = &stagesetv1.DriftDetection{Mode: stagesetv1.DriftDetectionDisabled}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	g.Expect(env.Client.Delete(ctx, configMapObj(ns, "cm"))).To(Succeed())
	requestReconcile(g, obj, "disabled-1")
	g.Consistently(exists("v1", "ConfigMap", ns, "cm"), "1s", poll).Should(BeFalse(), "no re-assertion")

	src.publish("rev-2", files{"cm.yaml": configMap("cm", "k", "v2")})
	g.Eventually(exists("v1", "ConfigMap", ns, "cm"), timeout, poll).Should(BeTrue(), "a new revision is applied")
}

func TestIgnoreRuleKeepsAScaledReplicaCount(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"deploy.yaml": deployment})
	st := stage("db", "./")
	st.Wait = new(bool) // no controllers here: the Deployment never becomes Available
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetection = &stagesetv1.DriftDetection{Ignore: []stagesetv1.IgnoreRule{{
		Paths: []string{"/spec/replicas"}, Target: &kustomize.Selector{Kind: "Deployment"},
	}}}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	d := &appsv1.Deployment{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, d)).To(Succeed())
	five := int32(5)
	d.Spec.Replicas = &five
	g.Expect(env.Client.Update(ctx, d, client.FieldOwner("hpa"))).To(Succeed())

	requestReconcile(g, obj, "scaled-1")
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, d)).To(Succeed())
	g.Expect(*d.Spec.Replicas).To(Equal(int32(5)))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)).To(BeEmpty())
}

func TestDriftDetectionIntervalRequeuesFaster(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DriftDetectionInterval = &metav1.Duration{Duration: 2 * time.Second}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	// The interval is an hour: only the drift interval brings it back.
	g.Expect(env.Client.Delete(ctx, configMapObj(ns, "cm"))).To(Succeed())
	g.Eventually(exists("v1", "ConfigMap", ns, "cm"), "15s", poll).Should(BeTrue())
}

// A new revision that arrives while a stage waits for health cancels the
// wait: the new run starts within seconds, not at the stage timeout.
func TestNewRevisionCancelsAHealthWait(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"deploy.yaml": deployment})
	obj := newStageSet(ns, "app", src, stage("db", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.Timeout = &metav1.Duration{Duration: 10 * time.Minute}
	create(t, obj)
	g.Eventually(func() stagesetv1.StagePhase {
		get(g, obj)
		if len(obj.Status.Stages) == 0 {
			return ""
		}
		return obj.Status.Stages[0].Phase
	}, timeout, poll).Should(Equal(stagesetv1.StagePhaseVerifying))

	started := time.Now()
	src.publish("rev-2", files{"cm.yaml": configMap("replacement")})
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(time.Since(started)).To(BeNumerically("<", time.Minute))
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("rev-2"))
	g.Expect(exists("apps/v1", "Deployment", ns, "db")()).To(BeFalse(), "pruned with its revision")
	for _, e := range notifications.For(ns, "app") {
		g.Expect(strings.Contains(e.Message, "context canceled")).To(BeFalse(), "an interrupted run is not a failure: %s", e.Message)
	}
}
