package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// actionJobNameFor is the name the controller gives Job job of action
// group/action of stage in obj at revision.
func actionJobNameFor(obj *stagesetv1.StageSet, stage, group, action, job, revision string) string {
	s := &run{obj: obj}
	return s.jobRun(plannedStage{spec: stagesetv1.Stage{Name: stage}, revision: revision}, group, action, job).Name()
}

// A completed Job that someone created under a migration's name, without
// the StageSet's ownership labels, is not the migration: the stage fails
// naming the Job, nothing is recorded, and once the Job is gone the
// migration really runs.
func TestPreCreatedCompletedJobIsNotTheMigration(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	name := migration.JobName("shop", "db", "1")

	forged := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{stagesetv1.MigrationAnnotation: "1"}},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "noop", Image: "busybox"}},
		}}},
	}
	g.Expect(env.Client.Create(ctx, forged)).To(Succeed())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, name, true, "")).To(Succeed())

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"db/m1.yaml": migrationJob("1"), "db/app.yaml": configMap("app")})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	eventuallyReason(t, g, obj, "False/MigrationFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
		HavePrefix(`migration "1" of stage "db" failed: `),
		ContainSubstring(fmt.Sprintf("Job/%s/%s exists but was not created by StageSet %s/shop", ns, name, ns)),
		ContainSubstring(`refusing to count it as migration "1"`)))
	g.Expect(obj.Status.Migrations).To(BeEmpty())
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse(), "the stage's objects are not applied")
	g.Expect(eventsWithReason(ns, "shop", stagesetv1.MigrationCompletedReason)).To(BeEmpty())
	kept := &batchv1.Job{}
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(forged), kept)).To(Succeed())
	g.Expect(kept.UID).To(Equal(forged.UID), "the foreign Job is left alone")
	g.Expect(kept.Labels).NotTo(HaveKey(stagesetv1.NameLabel), "the foreign Job is not adopted")

	// Nothing was recorded: with the foreign Job gone, the migration runs
	// under its name (a recorded migration would be skipped).
	g.Expect(env.Client.Delete(ctx, kept, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+meta.ReconcileRequestAnnotation+`":"retry"}}}`))
	g.Expect(env.Client.Patch(ctx, obj, patch)).To(Succeed())
	own := &batchv1.Job{}
	g.Eventually(func() bool {
		return env.Client.Get(ctx, client.ObjectKeyFromObject(forged), own) == nil && own.UID != forged.UID
	}, timeout, poll).Should(BeTrue())
	g.Expect(own.Labels).To(HaveKeyWithValue(stagesetv1.NameLabel, "shop"))
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, name, true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue())
}

// The Jobs of job actions are per StageSet, stage, action and revision, and
// fit a Job name.
func TestActionJobNamesAreApartAndFit(t *testing.T) {
	a := &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "a"}}
	b := &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "b"}}
	long := strings.Repeat("a", 70) + "." + strings.Repeat("b", 10)
	seen := map[string]string{}
	for _, c := range []struct {
		obj                                 *stagesetv1.StageSet
		stage, group, action, job, revision string
	}{
		{a, "app", "post", "smoke", "smoke", "rev-1"},
		{a, "app", "post", "smoke", "smoke", "rev-2"},
		{b, "app", "post", "smoke", "smoke", "rev-1"},
		{a, "web", "post", "smoke", "smoke", "rev-1"},
		{a, "app", "pre", "smoke", "smoke", "rev-1"},
		{a, "app", "post", "check", "smoke", "rev-1"},
		{a, "app", "post", "smoke", long, "rev-1"},
		{a, "app", "post", "smoke", long + "c", "rev-1"},
	} {
		got := actionJobNameFor(c.obj, c.stage, c.group, c.action, c.job, c.revision)
		desc := fmt.Sprintf("%s %s/%s/%s/%s@%s", c.obj.Name, c.stage, c.group, c.action, c.job, c.revision)
		if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 || len(got) > validation.DNS1123LabelMaxLength {
			t.Errorf("%s: invalid Job name %q: %v", desc, got, errs)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("%s and %s share Job name %q", desc, other, got)
		}
		seen[got] = desc
	}
	if got := actionJobNameFor(a, "app", "post", "smoke", "smoke", "rev-1"); !strings.HasPrefix(got, "smoke-") {
		t.Errorf("the Job's own name should lead: %q", got)
	}
}
