package e2e

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func availableSince(g Gomega, d *appsv1.Deployment) time.Time {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time
		}
	}
	g.Expect(d.Status.Conditions).To(ContainElement(HaveField("Type", appsv1.DeploymentAvailable)), "Deployment not Available")
	return time.Time{}
}

// Stage 2 starts only once stage 1's Deployment is Available: its pods were
// scheduled by kube-scheduler and made Ready by kwok.
func TestStageWaitsForTheDeploymentOfThePreviousStage(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"backend/deploy.yaml": deployment("backend", "backend:1", 3, ""),
		"frontend/cm.yaml":    configMap("frontend"),
	})
	obj := newStageSet(t, ns, time.Minute, stage("backend", "./backend"), stage("frontend", "./frontend"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("True/Succeeded"), func() string { return message(obj) })

	d := &appsv1.Deployment{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "backend"}, d)).To(Succeed())
	g.Expect(d.Status.AvailableReplicas).To(Equal(int32(3)))
	cm := &corev1.ConfigMap{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "frontend"}, cm)).To(Succeed())
	// Timestamps have a one-second resolution.
	g.Expect(cm.CreationTimestamp.Time).NotTo(BeTemporally("<", availableSince(g, d).Truncate(time.Second)),
		"stage frontend was applied before the Deployment of stage backend was Available")
}

// Pods that fail (kwok's chaos stage, opted in by label) fail the stage with
// StageFailed, and the next stage is never applied. kwok makes a pod Ready
// before its chaos stage fails it about a second later, so minReadySeconds
// keeps the Deployment from counting that moment as Available.
func TestFailingPodsFailTheStage(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"broken/deploy.yaml": deploymentWith("broken", "broken:1", 1, `, pod-container-running-failed.stage.kwok.x-k8s.io: "true"`, 10),
		"after/cm.yaml":      configMap("after"),
	})
	obj := newStageSet(t, ns, 25*time.Second, stage("broken", "./broken"), stage("after", "./after"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("False/StageFailed"))
	g.Expect(message(obj)).To(HavePrefix(`stage "broken" failed: health check`))
	g.Expect(cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "after"}, &corev1.ConfigMap{})).
		NotTo(Succeed(), "the stage after a failed one is not applied")
}

// A new revision changes the pod template: the Deployment rolls out a new
// ReplicaSet and the StageSet is Ready at the new revision once it is done.
func TestNewRevisionRollsOutWithARollingUpdate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	repo := newGitRepo(t, ns, "rev-1", files{"web/deploy.yaml": deployment("web", "web:1", 2, "")})
	obj := newStageSet(t, ns, time.Minute, stage("web", "./web"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("True/Succeeded"))

	repo.publish("rev-2", files{"web/deploy.yaml": deployment("web", "web:2", 2, "")})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	g.Expect(readyReason(g, obj)()).To(Equal("True/Succeeded"))

	d := &appsv1.Deployment{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "web"}, d)).To(Succeed())
	g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal("web:2"))
	g.Expect(d.Status.UpdatedReplicas).To(Equal(int32(2)))
	g.Expect(d.Status.AvailableReplicas).To(Equal(int32(2)))
	var sets appsv1.ReplicaSetList
	g.Expect(cluster.Client.List(ctx, &sets, client.InNamespace(ns))).To(Succeed())
	g.Expect(sets.Items).To(HaveLen(2), "a rolling update leaves the old ReplicaSet scaled down")
}

// A Job in a stage is waited on until it completes before the next stage.
func TestStageWaitsForItsJobToComplete(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	newGitRepo(t, ns, "rev-1", files{
		"migrate/job.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      automountServiceAccountToken: false
      restartPolicy: Never
      containers:
        - name: migrate
          image: migrate:1
`,
		"app/cm.yaml": configMap("app"),
	})
	obj := newStageSet(t, ns, time.Minute, stage("migrate", "./migrate"), stage("app", "./app"))
	g.Eventually(readyReason(g, obj), timeout, poll).Should(Equal("True/Succeeded"), func() string { return message(obj) })

	job := &batchv1.Job{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "migrate"}, job)).To(Succeed())
	g.Expect(job.Status.Succeeded).To(Equal(int32(1)))
	g.Expect(job.Status.CompletionTime).NotTo(BeNil())
	cm := &corev1.ConfigMap{}
	g.Expect(cluster.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, cm)).To(Succeed())
	g.Expect(cm.CreationTimestamp.Time).NotTo(BeTemporally("<", job.Status.CompletionTime.Time.Truncate(time.Second)))
}
