package controller

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// migratedStageSet creates StageSet ns/shop whose stage "db" runs migration
// "1" before a ConfigMap, and waits until it is Ready.
func migratedStageSet(t *testing.T, g Gomega, ns, policy string) *stagesetv1.StageSet {
	t.Helper()
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"db/m.yaml": migrationJob("1"), "db/app.yaml": configMap("app", "v", "1"),
	})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DeletionPolicy = policy
	create(t, obj)
	job := migration.JobName("shop", "db", "1")
	g.Eventually(jobExists(ns, job), timeout, poll).Should(BeTrue())
	g.Expect(testenv.FinishJob(context.Background(), env.Client, ns, job, true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")
	return obj
}

func deleteAndWait(g Gomega, obj *stagesetv1.StageSet) {
	ctx := context.Background()
	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), &stagesetv1.StageSet{}))
	}, timeout, poll).Should(BeTrue())
}

// The ledger has no owner for the garbage collector to delete it by
// (tests/e2e proves it against a real one), and survives a deletion that
// keeps the migrated objects: a StageSet created again with a new UID runs
// no migration twice.
func TestLedgerOutlivesADeletionThatKeepsTheObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	obj := migratedStageSet(t, g, ns, stagesetv1.DeletionPolicyOrphan)
	ledger := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-migrations"}, ledger)).To(Succeed())
	g.Expect(ledger.OwnerReferences).To(BeEmpty())

	deleteAndWait(g, obj)
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(ledger), ledger)).To(Succeed())
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue())
	// Without the old Job, a migration run again would show as a new one.
	g.Expect(env.Client.Delete(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: migration.JobName("shop", "db", "1")}})).To(Succeed())

	again := newStageSet(ns, "shop", &repo{kind: stagesetv1.GitRepositoryKind, ns: ns, name: "repo"}, stage("db", "./db"))
	again.Spec.TargetNamespace = ns
	create(t, again)
	eventuallyReason(t, g, again, "True/Succeeded")
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "1"))()).To(BeFalse(), "the migration did not run again")
	g.Expect(eventsWithReason(ns, "shop", stagesetv1.MigrationStartedReason)).To(HaveLen(1))
}

// A teardown that deleted the stage's objects also removes the ledger: the
// data it migrated is gone.
func TestLedgerGoesWithTheObjectsItMigrated(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	obj := migratedStageSet(t, g, ns, stagesetv1.DeletionPolicyDelete)
	deleteAndWait(g, obj)
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-migrations"}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "ledger still there: %v", err)
}

// An object kept by stageset.io/prune: disabled keeps the data its stage's
// migrations migrated: the teardown keeps the ledger too.
func TestLedgerStaysWithAnObjectThatIsNotPruned(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"db/m.yaml":   migrationJob("1"),
		"db/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  annotations: {stageset.io/prune: disabled}\ndata: {v: \"1\"}\n",
	})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DeletionPolicy = stagesetv1.DeletionPolicyDelete
	create(t, obj)
	job := migration.JobName("shop", "db", "1")
	g.Eventually(jobExists(ns, job), timeout, poll).Should(BeTrue())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, job, true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")

	deleteAndWait(g, obj)
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue())
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-migrations"}, &corev1.Secret{})).To(Succeed())
}

// The same when the teardown waits at the stage (an object held by a
// finalizer) and so spans several reconciles: each pass finds the kept
// object kept again.
func TestLedgerStaysWithAKeptObjectAcrossATeardownWait(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"first/cm.yaml": configMap("first"),
		"db/m.yaml":     migrationJob("1"),
		"db/app.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  annotations: {stageset.io/prune: disabled}\ndata: {v: \"1\"}\n",
		"db/held.yaml":  heldConfigMap("resource"),
	})
	obj := newStageSet(ns, "shop", src, stage("first", "./first"), stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.DeletionPolicy = stagesetv1.DeletionPolicyDelete
	create(t, obj)
	t.Cleanup(func() { release(NewWithT(t), ns, "resource") })
	job := migration.JobName("shop", "db", "1")
	g.Eventually(jobExists(ns, job), timeout, poll).Should(BeTrue())
	g.Expect(testenv.FinishJob(ctx, env.Client, ns, job, true, "")).To(Succeed())
	eventuallyReason(t, g, obj, "True/Succeeded")

	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() string { get(g, obj); return conditions.GetMessage(obj, meta.ReadyCondition) }, timeout, poll).
		Should(ContainSubstring("waiting for 1 objects to be deleted"))
	// A pass or two of the wait, then the finalizer goes.
	time.Sleep(2 * time.Second)
	release(g, ns, "resource")
	deleteAndWait(g, obj)
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "first")()).To(BeFalse())
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop-migrations"}, &corev1.Secret{})).To(Succeed())
}
