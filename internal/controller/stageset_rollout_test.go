package controller

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
spec:
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: db
          image: postgres:17
`

// markAvailable writes the status a Deployment controller would write once
// the rollout is complete, so kstatus sees the Deployment Current.
func markAvailable(g Gomega, ns, name string) {
	ctx := context.Background()
	d := &appsv1.Deployment{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d)).To(Succeed())
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
		},
	}
	g.Expect(env.Client.Status().Update(ctx, d)).To(Succeed())
}

func TestStagesRollOutInOrderGatedOnHealth(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "shop", "main@sha1:1111", files{
		"db/deployment.yaml": deployment,
		"db/config.yaml":     configMap("db-config"),
		"app/app.yaml":       configMap("app"),
		"web/web.yaml":       configMap("web"),
	})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"), stage("app", "./app"), stage("web", "./web"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	// Stage db applies, then waits for its Deployment.
	g.Eventually(exists("apps/v1", "Deployment", ns, "db"), timeout, poll).Should(BeTrue())
	g.Eventually(func() string {
		get(g, obj)
		if len(obj.Status.Stages) == 0 {
			return ""
		}
		return string(obj.Status.Stages[0].Phase)
	}, timeout, poll).Should(Equal(string(stagesetv1.StagePhaseVerifying)))
	g.Expect(conditions.IsUnknown(obj, meta.ReadyCondition)).To(BeTrue())
	g.Expect(conditions.GetMessage(obj, meta.ReconcilingCondition)).To(ContainSubstring(`Verifying stage "db" (1/3)`))

	// While it is not healthy, the later stages do not exist.
	g.Consistently(exists("v1", "ConfigMap", ns, "app"), "2s", poll).Should(BeFalse())
	g.Expect(exists("v1", "ConfigMap", ns, "web")()).To(BeFalse())

	markAvailable(g, ns, "db")
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "web")()).To(BeTrue())

	get(g, obj)
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(Equal("Applied revision: main@sha1:1111 (3 stages)"))
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("main@sha1:1111"))
	g.Expect(obj.Status.LastAppliedRevisions).To(Equal(map[string]string{"GitRepository/" + ns + "/shop": "main@sha1:1111"}))
	g.Expect(obj.Status.Stages).To(HaveLen(3))
	for i, name := range []string{"db", "app", "web"} {
		st := obj.Status.Stages[i]
		g.Expect(st.Name).To(Equal(name))
		g.Expect(st.Phase).To(Equal(stagesetv1.StagePhaseReady))
		g.Expect(st.Revision).To(Equal("main@sha1:1111"))
		g.Expect(st.Inventory).NotTo(BeNil())
	}
	g.Expect(obj.Status.Stages[0].Inventory.Entries).To(ConsistOf(
		stagesetv1.ResourceRef{ID: ns + "_db_apps_Deployment", Version: "v1"},
		stagesetv1.ResourceRef{ID: ns + "_db-config__ConfigMap", Version: "v1"},
	))
	g.Expect(obj.Status.History).To(HaveLen(1))
	g.Expect(obj.Status.History[0].Result).To(Equal(stagesetv1.SucceededReason))

	// Applied objects carry the ownership labels.
	cm := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, cm)).To(Succeed())
	g.Expect(cm.Labels).To(Equal(map[string]string{
		stagesetv1.NameLabel: "shop", stagesetv1.NamespaceLabel: ns, stagesetv1.StageLabel: "web",
	}))
	var manager string
	for _, f := range cm.ManagedFields {
		manager = f.Manager
	}
	g.Expect(manager).To(Equal(ControllerName))
}
