package controller

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func migrationJob(version string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {stageset.io/migration: %q}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "migrate:%s"}]
`, version, version)
}

func jobExists(ns, name string) func() bool {
	return func() bool {
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &batchv1.Job{}) == nil
	}
}

func TestMigrationsRunInOrderBeforeTheStageAndNeverAgain(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	// Two migration Jobs (their names in the artifact do not matter: each
	// runs under its own deterministic name).
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"db/m10.yaml": migrationJob("10"),
		"db/m2.yaml":  replaceOnce(migrationJob("2"), "name: migrate", "name: migrate-two"),
		"db/app.yaml": configMap("app", "v", "1"),
	})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	// Version 2 runs first (natural order), alone, before the stage applies.
	g.Eventually(jobExists(ns, migration.JobName("shop", "db", "2")), timeout, poll).Should(BeTrue())
	g.Eventually(func() stagesetv1.StagePhase { get(g, obj); return obj.Status.Stages[0].Phase }, timeout, poll).Should(Equal(stagesetv1.StagePhaseMigrating))
	g.Consistently(jobExists(ns, migration.JobName("shop", "db", "10")), "1s", poll).Should(BeFalse())
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, migration.JobName("shop", "db", "2"), true, "")).To(Succeed())

	g.Eventually(jobExists(ns, migration.JobName("shop", "db", "10")), timeout, poll).Should(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
	job := &batchv1.Job{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration.JobName("shop", "db", "10")}, job)).To(Succeed())
	g.Expect(job.Annotations).To(HaveKeyWithValue(stagesetv1.MigrationAnnotation, "10"))
	g.Expect(job.Labels).To(HaveKeyWithValue(stagesetv1.StageLabel, "db"))
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, migration.JobName("shop", "db", "10"), true, "")).To(Succeed())

	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue())
	g.Expect(obj.Status.Migrations).To(HaveLen(2))
	g.Expect(obj.Status.Migrations[0].Version).To(Equal("2"))
	g.Expect(obj.Status.Migrations[1].Version).To(Equal("10"))
	for _, reason := range []string{stagesetv1.MigrationStartedReason, stagesetv1.MigrationCompletedReason} {
		g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "shop", reason) }, timeout, poll).Should(HaveLen(2), reason)
	}

	// The completed Jobs stay until the stage's next successful rollout.
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "2"))()).To(BeTrue())

	// Status lost, new revision: the ledger keeps the migrations from
	// running again (a re-created Job would never complete here, and the
	// revision would never be applied), and the old Jobs are deleted.
	get(g, obj)
	obj.Status.Migrations = nil
	g.Expect(env.Client.Status().Update(ctx, obj)).To(Succeed())
	src.publish("rev-2", files{
		"db/m10.yaml": migrationJob("10"),
		"db/m2.yaml":  replaceOnce(migrationJob("2"), "name: migrate", "name: migrate-two"),
		"db/app.yaml": configMap("app", "v", "2"),
	})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "2"))()).To(BeFalse())
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "10"))()).To(BeFalse())

	// A completed migration whose Job changed is reported, not run.
	src.publish("rev-3", files{
		"db/m10.yaml": replaceOnce(migrationJob("10"), `image: "migrate:10"`, `image: "migrate:10-fixed"`),
		"db/m2.yaml":  replaceOnce(migrationJob("2"), "name: migrate", "name: migrate-two"),
		"db/app.yaml": configMap("app", "v", "3"),
	})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-3"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "shop", MigrationChangedReason) }, timeout, poll).Should(HaveLen(1))
	g.Expect(eventsWithReason(ns, "shop", MigrationChangedReason)[0].Message).To(ContainSubstring(`Migration "10" of stage "db" changed`))
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "10"))()).To(BeFalse())
}

// migratingStageSet creates StageSet "shop" whose stage "db" runs migration
// "1" (Job migration.JobName("shop", "db", "1")) before its ConfigMap "app",
// with an onFailure action whose calls are counted, and returns once the Job
// exists.
func migratingStageSet(t *testing.T, ns string) (*stagesetv1.StageSet, *repo, *atomic.Int64) {
	t.Helper()
	srv, hits := hookServer(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"db/m1.yaml": migrationJob("1"), "db/app.yaml": configMap("app", "v", "1")})
	st := stage("db", "./db")
	st.Actions = &stagesetv1.StageActions{OnFailure: []stagesetv1.Action{{Name: "page", HTTP: &stagesetv1.HTTPAction{URL: srv.URL}}}}
	obj := newStageSet(ns, "shop", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	NewWithT(t).Eventually(jobExists(ns, migration.JobName("shop", "db", "1")), timeout, poll).Should(BeTrue())
	return obj, src, hits
}

func TestFailedMigrationHaltsTheStage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	obj, _, hits := migratingStageSet(t, ns)
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, migration.JobName("shop", "db", "1"), false, "schema is locked")).To(Succeed())
	eventuallyReason(t, g, obj, "False/MigrationFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
		HavePrefix(`migration "1" of stage "db" failed: `), ContainSubstring("schema is locked")))
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse(), "the stage's objects are not applied")
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "1"))()).To(BeTrue(), "the failed Job is kept")
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "shop", stagesetv1.MigrationFailedReason) }, timeout, poll).ShouldNot(BeEmpty())
	g.Eventually(hits.Load, timeout, poll).Should(Equal(int64(1)), "onFailure actions run")
}

func TestFailedMigrationRollsBack(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"db/app.yaml": configMap("app", "v", "1")})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	src.publish("rev-2", files{"db/m1.yaml": migrationJob("1"), "db/app.yaml": configMap("app", "v", "2")})
	g.Eventually(jobExists(ns, migration.JobName("shop", "db", "1")), timeout, poll).Should(BeTrue())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, migration.JobName("shop", "db", "1"), false, "schema is locked")).To(Succeed())
	eventuallyReason(t, g, obj, "False/RolledBack")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
		ContainSubstring(`rollout of revision rev-2 failed at stage "db"`), ContainSubstring("schema is locked"),
		ContainSubstring("rolled back to revision rev-1")))
	app := configMapObj(ns, "app")
	get(g, app)
	g.Expect(app.Data).To(HaveKeyWithValue("v", "1"))
}

// A new revision arriving while a migration runs interrupts the wait, not
// the migration: no failure is reported or acted upon, and the run of the
// new revision waits on the same Job.
func TestNewRevisionDuringAMigrationWaitsOnTheSameJob(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	obj, src, hits := migratingStageSet(t, ns)
	job := &batchv1.Job{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration.JobName("shop", "db", "1")}, job)).To(Succeed())
	src.publish("rev-2", files{"db/m1.yaml": migrationJob("1"), "db/app.yaml": configMap("app", "v", "2")})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAttemptedRevision }, timeout, poll).Should(Equal("rev-2"))

	g.Expect(testenv.FinishJob(ctx, env.Client, ns, migration.JobName("shop", "db", "1"), true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("rev-2"))
	finished := &batchv1.Job{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration.JobName("shop", "db", "1")}, finished)).To(Succeed())
	g.Expect(finished.UID).To(Equal(job.UID))
	g.Expect(eventsWithReason(ns, "shop", stagesetv1.MigrationFailedReason)).To(BeEmpty())
	g.Expect(hits.Load()).To(BeZero(), "no onFailure action ran")
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
}

// A migration that outlives the stage timeout fails the stage: a timeout is
// a failure, not an interruption.
func TestMigrationBeyondTheStageTimeoutFails(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"db/m1.yaml": migrationJob("1"), "db/app.yaml": configMap("app")})
	st := stage("db", "./db")
	st.Timeout = &metav1.Duration{Duration: 2 * time.Second}
	obj := newStageSet(ns, "shop", src, st)
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	eventuallyReason(t, g, obj, "False/MigrationFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
		HavePrefix(`migration "1" of stage "db" failed: timed out waiting for Job/`+ns+`/`+migration.JobName("shop", "db", "1")),
		ContainSubstring("context deadline exceeded")))
	g.Expect(obj.Status.Stages[0].Phase).To(Equal(stagesetv1.StagePhaseFailed))
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
}

// A failed migration whose Job was fixed under the same version is not run
// again by itself: the message says to bump the version (or delete the
// failed Job), and bumping it runs the fixed Job.
func TestFixedMigrationUnderTheSameVersionAsksForABump(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	obj, src, _ := migratingStageSet(t, ns)
	failedJob := migration.JobName("shop", "db", "1")
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, failedJob, false, "schema is locked")).To(Succeed())
	eventuallyReason(t, g, obj, "False/MigrationFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).NotTo(ContainSubstring("bump"), "the same Job failing says nothing more")

	fixed := replaceOnce(migrationJob("1"), `image: "migrate:1"`, `image: "migrate:fixed"`)
	src.publish("rev-2", files{"db/m1.yaml": fixed, "db/app.yaml": configMap("app", "v", "1")})
	g.Eventually(func() string { get(g, obj); return conditions.GetMessage(obj, meta.ReadyCondition) }, timeout, poll).Should(And(
		ContainSubstring("schema is locked"),
		ContainSubstring(`the Job of version "1" changed since it failed`),
		ContainSubstring("bump the stageset.io/migration annotation"),
		ContainSubstring("delete Job "+ns+"/"+failedJob)))
	g.Expect(readyReason(g, obj)()).To(Equal("False/MigrationFailed"))

	src.publish("rev-3", files{"db/m1.yaml": replaceOnce(fixed, `"1"`, `"2"`), "db/app.yaml": configMap("app", "v", "1")})
	g.Eventually(jobExists(ns, migration.JobName("shop", "db", "2")), timeout, poll).Should(BeTrue())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, migration.JobName("shop", "db", "2"), true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
}
