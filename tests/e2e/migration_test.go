package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/migration"
)

// migrationJob is a migration Job of version, its pods labelled with
// podLabels (YAML flow-map entries).
func migrationJob(name, version, podLabels string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
  annotations: {stageset.io/migration: %q}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {%s}
    spec:
      automountServiceAccountToken: false
      restartPolicy: Never
      containers: [{name: migrate, image: "migrate:1"}]
`, name, version, podLabels)
}

// Migration Jobs really run (kube-controller-manager creates their pods,
// kwok completes them), one after the other in semver order, before the
// Deployment of their stage is applied.
func TestMigrationJobsCompleteInOrderBeforeTheirStageApplies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"db/m10.yaml":    migrationJob("add-index", "1.10.0", ""),
		"db/m2.yaml":     migrationJob("add-table", "1.2.0", ""),
		"db/deploy.yaml": deployment("db", "db:1", 1, ""),
	})
	obj := newStageSet(t, ns, time.Minute, stage("db", "./db"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("True/Succeeded"), func() string { return message(obj) })

	first, second := &batchv1.Job{}, &batchv1.Job{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration.JobName("app", "db", "1.2.0")}, first)).To(Succeed())
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration.JobName("app", "db", "1.10.0")}, second)).To(Succeed())
	g.Expect(first.Status.CompletionTime).NotTo(BeNil())
	g.Expect(second.Status.CompletionTime).NotTo(BeNil())
	// Timestamps have a second's resolution: "not before" is what they can
	// tell.
	g.Expect(second.CreationTimestamp.Time).NotTo(BeTemporally("<", first.Status.CompletionTime.Time))
	d := &appsv1.Deployment{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, d)).To(Succeed())
	g.Expect(d.CreationTimestamp.Time).NotTo(BeTemporally("<", second.Status.CompletionTime.Time))
	g.Expect(obj.Status.Migrations).To(HaveLen(2))
	g.Expect(obj.Status.Migrations[0].Version).To(Equal("1.2.0"))
}

// A migration whose pod fails (kwok's chaos stage) fails the stage with the
// Job's message and the end of its pod's log, read through the API server
// from the node; the Job is kept and the stage's Deployment never applied.
func TestFailedMigrationReportsItsPodLog(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"db/migrate.yaml": migrationJob("schema", "1.0.0", `pod-container-running-failed.stage.kwok.x-k8s.io: "true"`),
		"db/deploy.yaml":  deployment("db", "db:1", 1, ""),
	})
	obj := newStageSet(t, ns, time.Minute, stage("db", "./db"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("False/MigrationFailed"))
	g.Expect(message(obj)).To(And(
		HavePrefix(`migration "1.0.0" of stage "db" failed: Job/`+ns+`/`+migration.JobName("app", "db", "1.0.0")+` failed: `),
		ContainSubstring("\nlast log lines of pod "+migration.JobName("app", "db", "1.0.0")+"-"),
		HaveSuffix(", container migrate:\n"+podLog)))
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: migration.JobName("app", "db", "1.0.0")}, &batchv1.Job{})).To(Succeed(), "the failed Job is kept")
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &appsv1.Deployment{})).NotTo(Succeed())
}
