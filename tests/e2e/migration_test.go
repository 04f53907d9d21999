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
)

const migrationJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: schema
  annotations: {stageset.io/migration: "1.0.0"}
spec:
  backoffLimit: 0
  template:
    metadata:
      labels: {%s}
    spec:
      automountServiceAccountToken: false
      restartPolicy: Never
      containers: [{name: migrate, image: "migrate:1"}]
`

// A migration Job really runs (kube-controller-manager creates its pod, kwok
// completes it) before the Deployment of its stage is applied.
func TestMigrationJobCompletesBeforeItsStageApplies(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"db/migrate.yaml": fmt.Sprintf(migrationJob, ""),
		"db/deploy.yaml":  deployment("db", "db:1", 1, ""),
	})
	obj := newStageSet(t, ns, time.Minute, stage("db", "./db"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("True/Succeeded"), func() string { return message(obj) })

	job := &batchv1.Job{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-db-m-1-0-0"}, job)).To(Succeed())
	g.Expect(job.Status.CompletionTime).NotTo(BeNil())
	d := &appsv1.Deployment{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, d)).To(Succeed())
	g.Expect(d.CreationTimestamp.Time).NotTo(BeTemporally("<", job.Status.CompletionTime.Time.Truncate(time.Second)))
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
}

// A migration whose pod fails (kwok's chaos stage) fails the stage with the
// Job's message and the end of its pod's log, read through the API server
// from the node; the Job is kept and the stage's Deployment never applied.
func TestFailedMigrationReportsItsPodLog(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"db/migrate.yaml": fmt.Sprintf(migrationJob, `pod-container-running-failed.stage.kwok.x-k8s.io: "true"`),
		"db/deploy.yaml":  deployment("db", "db:1", 1, ""),
	})
	obj := newStageSet(t, ns, time.Minute, stage("db", "./db"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("False/MigrationFailed"))
	g.Expect(message(obj)).To(And(
		HavePrefix(`migration "1.0.0" of stage "db" failed: Job/`+ns+`/app-db-m-1-0-0 failed: `),
		ContainSubstring("\nlast log lines of pod app-db-m-1-0-0-"),
		HaveSuffix(", container migrate:\n"+podLog)))
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app-db-m-1-0-0"}, &batchv1.Job{})).To(Succeed(), "the failed Job is kept")
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "db"}, &appsv1.Deployment{})).NotTo(Succeed())
}
