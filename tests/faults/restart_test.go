package faults

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestRolloutSurvivesAnAPIServerRestart restarts kube-apiserver while a
// three-stage rollout waits on its Deployments: the rollout ends Ready at
// its revision with every object of every stage, and the controller
// process is still the one started before.
func TestRolloutSurvivesAnAPIServerRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	content := files{}
	for _, s := range []string{"s1", "s2", "s3"} {
		content[s+"/cm.yaml"] = configMap(s+"-config", "v1")
		content[s+"/deploy.yaml"] = deployment(s + "-web")
	}
	newGitRepo(t, ns, "rev-1", content)
	c := newController(t, "controller", nil, "--watch-label-selector="+testLabel+"=restart")
	c.start()
	obj := newStageSet(ns, stage("s1"), stage("s2"), stage("s3"))
	obj.Labels = map[string]string{testLabel: "restart"}
	g.Expect(kube.Create(ctx, obj)).To(Succeed())

	g.Eventually(func() string { return progress(g, obj) }, timeout, 50*time.Millisecond).Should(ContainSubstring("s1=Ready"))
	t.Logf("restarting kube-apiserver at: %s", progress(g, obj))
	logs, err := os.Create(filepath.Join(t.TempDir(), "kube-apiserver.log"))
	g.Expect(err).NotTo(HaveOccurred())
	defer logs.Close()
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	down, err := cluster.RestartAPIServer(ctx2, logs)
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("kube-apiserver answered again %s after SIGTERM", down.Round(10*time.Millisecond))

	waitReady(g, obj, "rev-1")
	for _, s := range []string{"s1", "s2", "s3"} {
		g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: s + "-config"}, &corev1.ConfigMap{})).To(Succeed())
	}
	g.Expect(c.running()).To(BeTrue())
	g.Expect(c.starts).To(Equal(1))
}
