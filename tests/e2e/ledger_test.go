package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
)

// The migration ledger outlives its StageSet when the migrated objects do
// (deletionPolicy Orphan), against a real garbage collector: a Secret owned
// by the deleted StageSet is collected, the ledger is not, and the StageSet
// created again (a new UID) runs no migration twice.
func TestLedgerOutlivesItsStageSetUnderTheGarbageCollector(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"db/migrate.yaml": migrationJob("schema", "1.0.0", ""),
		"db/app.yaml":     configMap("app"),
	})
	obj := newStageSet(t, ns, time.Minute, stage("db", "./db"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("True/Succeeded"), func() string { return message(obj) })
	get(g, obj)
	obj.Spec.DeletionPolicy = stagesetv1.DeletionPolicyOrphan
	g.Expect(cluster.Client.Update(ctx, obj)).To(Succeed())
	g.Eventually(func() int64 { get(g, obj); return obj.Status.ObservedGeneration }, timeout, poll).Should(Equal(obj.Generation))

	// A canary owned by the StageSet shows when the collector has acted.
	canary := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "canary", OwnerReferences: []metav1.OwnerReference{{
		APIVersion: stagesetv1.GroupVersion.String(), Kind: stagesetv1.StageSetKind, Name: obj.Name, UID: obj.UID,
	}}}}
	g.Expect(cluster.Client.Create(ctx, canary)).To(Succeed())
	g.Expect(cluster.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(cluster.Client.Get(ctx, client.ObjectKeyFromObject(canary), canary))
	}, timeout, poll).Should(BeTrue(), "the garbage collector deletes what the StageSet owned")
	ledger := &corev1.Secret{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-migrations"}, ledger)).To(Succeed(), "the ledger is kept")

	// With the completed Job gone (the run of the policy change may have
	// cleaned it up already), a migration run again would show.
	job := migration.JobName("app", "db", "1.0.0")
	g.Expect(client.IgnoreNotFound(cluster.Client.Delete(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: job}},
		client.PropagationPolicy(metav1.DeletePropagationBackground)))).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: job}, &batchv1.Job{}))
	}, timeout, poll).Should(BeTrue())

	again := newStageSet(t, ns, time.Minute, stage("db", "./db"))
	g.Eventually(readyReason(g, again), timeout, poll).Should(Equal("True/Succeeded"), func() string { return message(again) })
	g.Expect(apierrors.IsNotFound(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: job}, &batchv1.Job{}))).To(BeTrue(),
		"the migration did not run again")
}
