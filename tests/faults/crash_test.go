package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/migration"
)

// envInt reads a number from the environment, def when unset.
func envInt(t *testing.T, name string, def int64) int64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// crashRevision is revision n of the crash test: from the second on,
// every stage changes, f3 is gone (pruned) and g1 and migration 3 are new.
func crashRevision(n int) files {
	v := fmt.Sprintf("v%d", n)
	out := files{
		"s1/cm.yaml":     configMap("a1", v) + "---\n" + configMap("a2", v),
		"s1/deploy.yaml": deployment("d1"),
		"s2/cm.yaml":     configMap("b1", v),
		"s2/m1.yaml":     migrationJob("m1", "1.0.0"),
		"s3/cm.yaml":     configMap("c1", v),
		"s3/deploy.yaml": deployment("d3"),
		"s4/cm.yaml":     configMap("e1", v),
		"s4/m2.yaml":     migrationJob("m2", "2.0.0"),
		"s5/cm.yaml":     configMap("f1", v) + "---\n" + configMap("f2", v),
		"s5/deploy.yaml": deployment("d5"),
		// Job actions live outside the stage folders.
		"actions/pre/job.yaml":  actionJob("pre"),
		"actions/post/job.yaml": actionJob("post"),
	}
	if n == 1 {
		out["s5/f3.yaml"] = configMap("f3", v)
	} else {
		out["s5/g1.yaml"] = configMap("g1", v)
		out["s4/m3.yaml"] = migrationJob("m3", "3.0.0")
	}
	return out
}

// crashStageSet is the StageSet of the crash test: 5 stages, migrations in
// s2 and s4, pre and post Job actions around s3.
func crashStageSet(ns string) *stagesetv1.StageSet {
	obj := newStageSet(ns, stage("s1"), stage("s2"), stage("s3"), stage("s4"), stage("s5"))
	obj.Spec.Stages[2].Actions = &stagesetv1.StageActions{
		Pre:  []stagesetv1.Action{{Name: "pre", Job: &stagesetv1.JobAction{Path: "./actions/pre"}}},
		Post: []stagesetv1.Action{{Name: "post", Job: &stagesetv1.JobAction{Path: "./actions/post"}}},
	}
	return obj
}

// TestCrashConsistency SIGKILLs the controller in rollouts (5 stages, two
// then three migrations, Job actions before and after a stage) and
// restarts it each time. Afterwards the StageSet is
// Ready at the last revision, every migration Job and every action Job of
// each revision was created exactly once (seen by a watch of Jobs), every
// object is in exactly one stage's inventory, no object with the
// StageSet's labels is left outside them, the object removed in the second
// revision is pruned, and objects outside the inventory survive, even one
// that forges the StageSet's labels.
//
// The first rollout is killed at the four points where a lost step would
// run a Job twice; then FAULTS_KILLS times (default 4, `make reliability`
// 24) at random, a new revision published whenever the last is Ready, so
// that kills keep landing in rollouts (the log says where each landed: one
// a revision lands right as it became Ready); FAULTS_SEED replays the
// draws (it is logged).
func TestCrashConsistency(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	kills := envInt(t, "FAULTS_KILLS", 4)
	seed := uint64(envInt(t, "FAULTS_SEED", time.Now().UnixNano()))
	t.Logf("seed %d, %d kills (replay with FAULTS_SEED=%d)", seed, kills, seed)
	rnd := rand.New(rand.NewPCG(seed, 0))

	ns := newNamespace(t)
	jobs := watchJobs(t, ns)
	repo := newGitRepo(t, ns, "rev-1", crashRevision(1))

	// Outside the inventory: one plain, one wearing the labels of stage s5.
	bystander := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "bystander"}}
	forged := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "forged",
		Labels: apply.Owner{Name: "app", Namespace: ns, Stage: "s5"}.Labels()}}
	for _, obj := range []client.Object{bystander, forged} {
		g.Expect(kube.Create(ctx, obj)).To(Succeed())
	}

	c := newController(t, "controller", nil, "--watch-label-selector="+testLabel+"=crash")
	c.start()
	obj := crashStageSet(ns)
	obj.Labels = map[string]string{testLabel: "crash"}
	g.Expect(kube.Create(ctx, obj)).To(Succeed())

	// The first rollout is killed where a lost step would run something
	// twice: as soon as each migration and action Job exists.
	for _, prefix := range []string{migration.JobName("app", "s2", "1.0.0"), "pre-", "post-", migration.JobName("app", "s4", "2.0.0")} {
		g.Eventually(func() int { return jobs.createdWithPrefix(prefix) }, timeout, 50*time.Millisecond).Should(BeNumerically(">", 0), "Job %s*", prefix)
		c.kill()
		t.Logf("killed when Job %s* appeared: %s", prefix, progress(g, obj))
		c.start()
	}
	waitReady(g, obj, "rev-1")

	// Then at seeded random points, each in a rollout: a revision that is
	// Ready gets the next one.
	revision := 2
	repo.publish("rev-2", crashRevision(2))
	for i := range kills {
		time.Sleep(time.Duration(500+rnd.IntN(2500)) * time.Millisecond)
		c.kill()
		t.Logf("kill %d at rev-%d: %s", i+1, revision, progress(g, obj))
		if readyOf(obj) == "True/Succeeded" && obj.Status.LastAppliedRevision == fmt.Sprintf("rev-%d", revision) {
			revision++
			repo.publish(fmt.Sprintf("rev-%d", revision), crashRevision(revision))
		}
		c.start()
	}
	waitReady(g, obj, fmt.Sprintf("rev-%d", revision))
	t.Logf("%d controller processes", c.starts)

	// Migrations: each Job created once, across both revisions.
	for stage, versions := range map[string][]string{"s2": {"1.0.0"}, "s4": {"2.0.0", "3.0.0"}} {
		for _, v := range versions {
			g.Expect(jobs.created(migration.JobName("app", stage, v))).To(Equal(1), "migration %s of %s", v, stage)
		}
	}
	// Actions: one Job per action and revision.
	t.Logf("%d revisions rolled out", revision)
	g.Expect(jobs.createdWithPrefix("pre-")).To(Equal(revision), "pre action Jobs: %v", jobs.names())
	g.Expect(jobs.createdWithPrefix("post-")).To(Equal(revision), "post action Jobs: %v", jobs.names())
	g.Expect(jobs.total()).To(Equal(3+2*revision), "every Job: %v", jobs.names())

	// Inventories: each object in exactly one; all of the last revision.
	owner := map[string]string{}
	for _, st := range obj.Status.Stages {
		g.Expect(st.Inventory).NotTo(BeNil(), "stage %s", st.Name)
		for _, e := range st.Inventory.Entries {
			g.Expect(owner).NotTo(HaveKey(e.ID), "%s in stages %s and %s", e.ID, owner[e.ID], st.Name)
			owner[e.ID] = st.Name
		}
	}
	want := map[string]string{}
	for stage, names := range map[string][]string{"s1": {"a1", "a2"}, "s2": {"b1"}, "s3": {"c1"}, "s4": {"e1"}, "s5": {"f1", "f2", "g1"}} {
		for _, name := range names {
			want[ns+"_"+name+"__ConfigMap"] = stage
		}
	}
	for stage, name := range map[string]string{"s1": "d1", "s3": "d3", "s5": "d5"} {
		want[ns+"_"+name+"_apps_Deployment"] = stage
	}
	g.Expect(owner).To(Equal(want))

	// Nothing orphaned: every ConfigMap labelled as the StageSet's is in
	// an inventory, but the forged one; f3 was pruned.
	list := &corev1.ConfigMapList{}
	g.Expect(kube.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{stagesetv1.NameLabel: "app"})).To(Succeed())
	var labelled []string
	for _, cm := range list.Items {
		if _, ok := owner[ns+"_"+cm.Name+"__ConfigMap"]; !ok {
			labelled = append(labelled, cm.Name)
		}
	}
	g.Expect(labelled).To(Equal([]string{"forged"}))
	deployments := &appsv1.DeploymentList{}
	g.Expect(kube.List(ctx, deployments, client.InNamespace(ns), client.MatchingLabels{stagesetv1.NameLabel: "app"})).To(Succeed())
	for _, d := range deployments.Items {
		g.Expect(owner).To(HaveKey(ns+"_"+d.Name+"_apps_Deployment"), "Deployment %s outside the inventories", d.Name)
	}
	for _, obj := range []client.Object{bystander, forged} {
		g.Expect(kube.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed(), "outside the inventory: %s", obj.GetName())
	}
}

// waitReady waits until obj is Ready at rev.
func waitReady(g Gomega, obj *stagesetv1.StageSet, rev string) {
	g.Eventually(func() string {
		get(g, obj)
		return readyOf(obj) + " " + obj.Status.LastAppliedRevision
	}, timeout, poll).Should(Equal("True/Succeeded "+rev), func() string { return message(obj) })
}

// progress says where the rollout of obj is: its Ready reason and the
// phase of every stage that has one.
func progress(g Gomega, obj *stagesetv1.StageSet) string {
	get(g, obj)
	var phases []string
	for _, st := range obj.Status.Stages {
		phases = append(phases, st.Name+"="+string(st.Phase))
	}
	return readyOf(obj) + " " + strings.Join(phases, " ")
}

// configMap, deployment, migrationJob and actionJob are manifests of the
// tests; Jobs and Deployments run on kwok nodes.
func configMap(name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata: {v: %s}\n", name, value)
}

func deployment(name string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 1
  progressDeadlineSeconds: 30
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      automountServiceAccountToken: false
      containers: [{name: main, image: "app:1"}]
`, name)
}

func migrationJob(name, version string) string {
	return strings.Replace(actionJob(name), "metadata:\n", fmt.Sprintf("metadata:\n  annotations: {stageset.io/migration: %q}\n", version), 1)
}

func actionJob(name string) string {
	return fmt.Sprintf(`apiVersion: batch/v1
kind: Job
metadata:
  name: %s
spec:
  backoffLimit: 0
  template:
    spec:
      automountServiceAccountToken: false
      restartPolicy: Never
      containers: [{name: main, image: "job:1"}]
`, name)
}
