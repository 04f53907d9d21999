package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func patchAction(name, ns, target, patch string) stagesetv1.Action {
	return stagesetv1.Action{Name: name, Patch: &stagesetv1.PatchAction{
		Target: stagesetv1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Name: target, Namespace: ns},
		Type:   "merge", Patch: patch,
	}}
}

// hookServer counts the requests an HTTP action sends.
func hookServer(t *testing.T) (*httptest.Server, *atomic.Int64) {
	hits := &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

func TestPreAndPostActionsRunAroundTheStageOncePerRevision(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "maintenance"}, Data: map[string]string{"mode": "off"}})
	srv, hits := hookServer(t)

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"a/cm.yaml": configMap("app"), "b/cm.yaml": configMap("b")})
	st := stage("a", "./a")
	st.Actions = &stagesetv1.StageActions{
		Pre: []stagesetv1.Action{patchAction("maintenance-on", ns, "maintenance", `{"data":{"mode":"on","pre":"ran"}}`)},
		Post: []stagesetv1.Action{
			{Name: "until-released", Wait: &stagesetv1.WaitAction{
				Target: &stagesetv1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Name: "maintenance", Namespace: ns},
				Expr:   "has(self.data.released) && self.data.released == 'yes'",
			}},
			patchAction("maintenance-off", ns, "maintenance", `{"data":{"mode":"off"}}`),
			{Name: "notify", HTTP: &stagesetv1.HTTPAction{URL: srv.URL, Method: "POST"}},
		},
	}
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	// The pre action ran before the stage applied; the post wait holds Ready.
	maintenance := configMapObj(ns, "maintenance")
	g.Eventually(func() map[string]string { get(g, maintenance); return maintenance.Data }, timeout, poll).
		Should(HaveKeyWithValue("pre", "ran"))
	g.Eventually(exists("v1", "ConfigMap", ns, "app"), timeout, poll).Should(BeTrue())
	g.Consistently(readyReason(g, obj), "1500ms", poll).ShouldNot(Equal("True/Succeeded"), "post actions gate Ready")
	g.Expect(maintenance.Data).To(HaveKeyWithValue("mode", "on"))

	get(g, maintenance)
	maintenance.Data["released"] = "yes"
	g.Expect(env.Client.Update(ctx, maintenance)).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	get(g, maintenance)
	g.Expect(maintenance.Data).To(HaveKeyWithValue("mode", "off"))
	g.Expect(hits.Load()).To(Equal(int64(1)))
	g.Expect(obj.Status.Stages[0].PreActionsRevision).To(Equal("rev-1"))
	g.Expect(obj.Status.Stages[0].PostActionsRevision).To(Equal("rev-1"))

	// A spec change re-runs the stage at the same revision: no second run of
	// its actions.
	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Stages = append(obj.Spec.Stages, stage("b", "./b")) })
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(exists("v1", "ConfigMap", ns, "b")()).To(BeTrue())
	g.Expect(hits.Load()).To(Equal(int64(1)))
}

func TestFailedPreActionLeavesTheStageUntouched(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("app")})
	st := stage("a", "./")
	st.Actions = &stagesetv1.StageActions{Pre: []stagesetv1.Action{patchAction("toggle", ns, "absent", `{"data":{"x":"y"}}`)}}
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "False/StageFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(HavePrefix(`stage "a" failed: pre actions: patch action "toggle"`))
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
}

func TestOnFailureActionsRunAndAreReported(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	srv, hits := hookServer(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("gate", "state", "broken")})
	st := gatedStage("a", "./")
	st.Actions = &stagesetv1.StageActions{OnFailure: []stagesetv1.Action{
		{Name: "page", HTTP: &stagesetv1.HTTPAction{URL: srv.URL}},
		{Name: "refused", HTTP: &stagesetv1.HTTPAction{URL: "http://169.254.169.254/latest"}},
	}}
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "False/StageFailed")

	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.OnFailureActionReason) }, timeout, poll).Should(HaveLen(2))
	evs := eventsWithReason(ns, "app", stagesetv1.OnFailureActionReason)
	g.Expect(evs[0].Message).To(Equal(`onFailure action "page" (http) of stage "a" succeeded`))
	g.Expect(evs[1].Message).To(ContainSubstring(`onFailure action "refused" (http) of stage "a" failed:`))
	g.Expect(evs[1].Severity).To(Equal(eventv1.EventSeverityError))
	g.Expect(hits.Load()).To(Equal(int64(1)))
}

func TestJobActionRunsTheJobsOfItsPathPerRevision(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	smoke := strings.Replace(migrationJob("x"), "  annotations: {stageset.io/migration: \"x\"}\n", "", 1)
	smoke = strings.Replace(smoke, "name: migrate", "name: smoke", 1)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"app/cm.yaml": configMap("app"), "jobs/smoke.yaml": smoke})
	st := stage("app", "./app")
	st.Actions = &stagesetv1.StageActions{Post: []stagesetv1.Action{{Name: "smoke", Job: &stagesetv1.JobAction{Path: "./jobs"}}}}
	obj := newStageSet(ns, "shop", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	first := actionJobNameFor(obj, "app", "post", "smoke", "smoke", "rev-1")
	g.Eventually(jobExists(ns, first), timeout, poll).Should(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue(), "post actions run after the stage")
	g.Consistently(readyReason(g, obj), "1s", poll).ShouldNot(Equal("True/Succeeded"))
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, first, true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")

	src.publish("rev-2", files{"app/cm.yaml": configMap("app", "v", "2"), "jobs/smoke.yaml": smoke})
	second := actionJobNameFor(obj, "app", "post", "smoke", "smoke", "rev-2")
	g.Expect(second).NotTo(Equal(first))
	g.Eventually(jobExists(ns, second), timeout, poll).Should(BeTrue())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, second, true, "")).To(Succeed())
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
}

// A failing post action fails the stage after it applied: with
// rollbackOnFailure the stage is restored to the last good revision.
func TestFailedPostActionRollsBack(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("app", "v", "1")})
	st := stage("a", "./")
	st.Actions = &stagesetv1.StageActions{Post: []stagesetv1.Action{{Name: "smoke-test", HTTP: &stagesetv1.HTTPAction{URL: srv.URL}}}}
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	failing.Store(true)
	src.publish("rev-2", files{"cm.yaml": configMap("app", "v", "2")})
	eventuallyReason(t, g, obj, "False/RolledBack")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
		ContainSubstring(`post actions: http action "smoke-test"`), ContainSubstring("503"), ContainSubstring("rolled back to revision rev-1")))
	app := configMapObj(ns, "app")
	get(g, app)
	g.Expect(app.Data).To(HaveKeyWithValue("v", "1"))
}
