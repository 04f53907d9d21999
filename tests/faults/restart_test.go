package faults

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/migration"
)

// TestRolloutSurvivesAnAPIServerRestart restarts kube-apiserver while a
// three-stage rollout waits on a migration of its last stage (suspended
// until after the restart): the rollout ends Ready at its revision with
// every object of every stage, and the controller process is still the one
// started before.
func TestRolloutSurvivesAnAPIServerRestart(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	content := files{}
	for _, s := range []string{"s1", "s2", "s3"} {
		content[s+"/cm.yaml"] = configMap(s+"-config", "v1")
		content[s+"/deploy.yaml"] = deployment(s + "-web")
	}
	// s3 waits on a suspended migration Job until after the restart, so
	// the rollout is in progress through it.
	content["s3/m1.yaml"] = strings.Replace(migrationJob("m1", "1.0.0"), "spec:\n", "spec:\n  suspend: true\n", 1)
	newGitRepo(t, ns, "rev-1", content)
	c := newController(t, "controller", nil, "--watch-label-selector="+testLabel+"=restart")
	c.start()
	obj := newStageSet(ns, stage("s1"), stage("s2"), stage("s3"))
	obj.Labels = map[string]string{testLabel: "restart"}
	g.Expect(kube.Create(ctx, obj)).To(Succeed())

	jobName := migration.JobName("app", "s3", "1.0.0")
	job := &batchv1.Job{}
	g.Eventually(func() error {
		return kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: jobName}, job)
	}, timeout, poll).Should(Succeed())
	at := progress(g, obj)
	g.Expect(at).To(ContainSubstring("s3=Migrating"))
	t.Logf("restarting kube-apiserver at: %s", at)
	logs, err := os.Create(filepath.Join(t.TempDir(), "kube-apiserver.log"))
	g.Expect(err).NotTo(HaveOccurred())
	defer logs.Close()
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	down, err := cluster.RestartAPIServer(ctx2, logs)
	g.Expect(err).NotTo(HaveOccurred())
	t.Logf("kube-apiserver answered again %s after SIGTERM", down.Round(10*time.Millisecond))
	g.Expect(readyOf(obj)).NotTo(Equal("True/Succeeded"))
	g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: jobName}, job)).To(Succeed())
	g.Expect(kube.Patch(ctx, job, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":false}}`)))).To(Succeed())

	waitReady(g, obj, "rev-1")
	for _, s := range []string{"s1", "s2", "s3"} {
		g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: s + "-config"}, &corev1.ConfigMap{})).To(Succeed())
	}
	g.Expect(c.running()).To(BeTrue())
	g.Expect(c.starts).To(Equal(1))
}
