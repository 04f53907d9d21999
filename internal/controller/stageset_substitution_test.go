package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// substitutingStageSet creates StageSet "app" whose one stage applies
// ConfigMap "app" with ${greeting} and ${user} substituted from ConfigMap
// "vars" and Secret "creds". Its interval and retry interval are an hour:
// only a watch brings a run sooner.
func substitutingStageSet(t *testing.T, ns string) *stagesetv1.StageSet {
	t.Helper()
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"cm.yaml": configMap("app", "greeting", "${greeting}", "user", "${user}"),
	})
	st := stage("a", "./")
	st.PostBuild = &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{
		{Kind: "ConfigMap", Name: "vars"}, {Kind: "Secret", Name: "creds"},
	}}
	obj := newStageSet(ns, "app", src, st)
	obj.Spec.TargetNamespace = ns
	obj.Spec.RetryInterval = &metav1.Duration{Duration: time.Hour}
	create(t, obj)
	return obj
}

// substituteFromVars creates ConfigMap "vars" in ns with data and makes st
// substitute from it.
func substituteFromVars(t *testing.T, ns string, st stagesetv1.Stage, data map[string]string) (stagesetv1.Stage, *corev1.ConfigMap) {
	t.Helper()
	vars := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vars"}, Data: data}
	create(t, vars)
	st.PostBuild = &stagesetv1.PostBuild{SubstituteFrom: []stagesetv1.SubstituteReference{{Kind: "ConfigMap", Name: "vars"}}}
	return st, vars
}

func appData(g Gomega, ns string) func() map[string]string {
	return func() map[string]string {
		cm := configMapObj(ns, "app")
		if err := env.Client.Get(context.Background(), objKey(cm), cm); err != nil {
			return nil
		}
		return cm.Data
	}
}

// A changed substituteFrom value is rolled out at once (the ConfigMaps and
// Secrets are watched), as an update: no drift is reported for it.
func TestSubstituteFromChangesRollOut(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	vars := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vars"}, Data: map[string]string{"greeting": "hello"}}
	creds := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, StringData: map[string]string{"user": "admin"}}
	create(t, vars)
	create(t, creds)
	obj := substitutingStageSet(t, ns)
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(appData(g, ns)()).To(Equal(map[string]string{"greeting": "hello", "user": "admin"}))

	vars.Data["greeting"] = "bonjour"
	g.Expect(env.Client.Update(ctx, vars)).To(Succeed())
	g.Eventually(appData(g, ns), timeout, poll).Should(HaveKeyWithValue("greeting", "bonjour"))

	creds.StringData = map[string]string{"user": "root"}
	g.Expect(env.Client.Update(ctx, creds)).To(Succeed())
	g.Eventually(appData(g, ns), timeout, poll).Should(HaveKeyWithValue("user", "root"))

	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Consistently(func() int { return len(eventsWithReason(ns, "app", stagesetv1.DriftCorrectedReason)) }, "1s", poll).Should(BeZero())
}

// A substituteFrom object that is missing fails the build; creating it
// starts a run at once.
func TestMissingSubstituteFromIsPickedUpWhenCreated(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, StringData: map[string]string{"user": "admin"}})
	obj := substitutingStageSet(t, ns)
	eventuallyReason(t, g, obj, "False/BuildFailed")

	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vars"}, Data: map[string]string{"greeting": "hello"}})
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(appData(g, ns)()).To(HaveKeyWithValue("greeting", "hello"))
}

// substituteFrom names no namespace: a tenant's StageSet reads only its own
// namespace's ConfigMaps and Secrets. With "vars" and "creds" only in
// another tenant's namespace, the build fails naming the missing object and
// nothing of the other tenant's values is applied; once the tenant has its
// own, those are used, never the other's.
func TestSubstituteFromReadsOnlyTheStageSetsNamespace(t *testing.T) {
	g := NewWithT(t)
	tenantA, tenantB := env.NewNamespace(t), env.NewNamespace(t)
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "vars"}, Data: map[string]string{"greeting": "from-b"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "creds"}, StringData: map[string]string{"user": "b-admin"}})

	obj := substitutingStageSet(t, tenantA)
	eventuallyReason(t, g, obj, "False/"+stagesetv1.BuildFailedReason)
	get(g, obj)
	message := conditions.GetMessage(obj, meta.ReadyCondition)
	g.Expect(message).To(ContainSubstring("substituteFrom ConfigMap " + tenantA + "/vars not found"))
	g.Expect(message).NotTo(ContainSubstring("from-b"))
	g.Expect(appData(g, tenantA)()).To(BeNil())

	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: tenantA, Name: "vars"}, Data: map[string]string{"greeting": "from-a"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenantA, Name: "creds"}, StringData: map[string]string{"user": "a-admin"}})
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(appData(g, tenantA)()).To(Equal(map[string]string{"greeting": "from-a", "user": "a-admin"}))
}
