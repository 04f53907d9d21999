package main

import (
	"context"
	"testing"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// A restart changes no decision: whether a substituteFrom change lifts the
// hold on a rolled back revision set is decided from the status
// (status.lastAttemptedInputs), so a value fixed while the controller was
// stopped lifts the hold after the restart as it would have before.
func TestValueFixedWhileStoppedLiftsTheHoldAfterRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	vars := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vars",
		Labels: map[string]string{"reconcile.fluxcd.io/watch": "Enabled"}}, Data: map[string]string{"state": "fine"}}
	g.Expect(env.Client.Create(ctx, vars)).To(Succeed())
	publishRepo(t, ns, "rev-1", map[string]string{"gate.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gate\ndata:\n  state: ${state}\n"})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "gate", Path: "./",
		PostBuild: &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}}},
		HealthCheckExprs: []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
			HealthCheckExpressions: kustomize.HealthCheckExpressions{
				Current: "data.state != 'broken'",
				Failed:  "data.state == 'broken'",
			}}},
	})
	obj.Spec.RollbackOnFailure = true
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	stop := startController(t)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	// The digest in the status is keyed: no offline guessing of the values.
	g.Expect(obj.Status.LastAppliedInputs).To(HavePrefix("hmac-sha256:"))

	vars.Data["state"] = "broken"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/RolledBack"))
	stop()

	vars.Data["state"] = "fixed"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	startController(t)
	gate := &corev1.ConfigMap{}
	g.Eventually(func() string {
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "gate"}, gate)
		return gate.Data["state"]
	}, testenv.Timeout, testenv.Poll).Should(Equal("fixed"))
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
}

// --watch-configs-label-selector (Flux's default reconcile.fluxcd.io/watch=
// Enabled) decides which substituteFrom ConfigMaps trigger a run when they
// change: an unlabelled one waits for the next run, a labelled one rolls
// out at once.
func TestWatchConfigsLabelSelector(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	vars := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vars"}, Data: map[string]string{"greeting": "hello"}}
	g.Expect(env.Client.Create(ctx, vars)).To(Succeed())
	publishRepo(t, ns, "rev-1", map[string]string{"app.yaml": appConfigMap("${greeting}")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./", PostBuild: &stagesetv1.PostBuild{
		SubstituteFrom: []stagesetv1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}},
	}})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	startController(t)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	value := func() string {
		cm := &corev1.ConfigMap{}
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)
		return cm.Data["v"]
	}

	vars.Data["greeting"] = "bonjour"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	g.Consistently(value, "3s", testenv.Poll).Should(Equal("hello"), "an unlabelled ConfigMap waits for the next run")

	vars.Labels = map[string]string{"reconcile.fluxcd.io/watch": "Enabled"}
	vars.Data["greeting"] = "hola"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	g.Eventually(value, testenv.Timeout, testenv.Poll).Should(Equal("hola"))
}
