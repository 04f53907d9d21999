package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/leaderelection"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	stagesetcontroller "github.com/stageset/stageset-controller/internal/controller"
	"github.com/stageset/stageset-controller/internal/migration"
)

// eventCount is how many times an Event of reason was recorded in ns.
func eventCount(g Gomega, ns, reason string) int32 {
	var events corev1.EventList
	g.Expect(kube.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var n int32
	for _, e := range events.Items {
		if e.Reason == reason {
			n += max(e.Count, 1)
		}
	}
	return n
}

// testLabel selects the StageSets of one test: each test runs its own
// controllers, as a shard of their own (--watch-label-selector).
const testLabel = "faults.stageset.io/test"

// leaseHolder is the holder of the Lease the controllers of selector elect
// their leader with; "" while there is none.
func leaseHolder(g Gomega, selector string) string {
	lease := &coordinationv1.Lease{}
	name := leaderelection.GenerateID(stagesetcontroller.ControllerName+"-leader-election", selector)
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: "kube-system", Name: name}, lease); err != nil {
		return ""
	}
	if lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// TestLeaderFailoverInTheMiddleOfAMigration runs two replicas with leader
// election and kills the leader (SIGKILL: its lease is not released) while
// the migration it started is still running. The other replica takes the
// lease, reaches the migration (its own MigrationStarted event), waits on
// the same Job, still suspended, instead of starting another, and finishes
// the rollout once the Job runs; the objects applied before the failover
// are not recreated (same UID). The failover time (kill → new holder of the
// lease) is logged: with an 8 s lease it is 8–10 s.
func TestLeaderFailoverInTheMiddleOfAMigration(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	selector := testLabel + "=failover"
	ns := newNamespace(t)
	jobs := watchJobs(t, ns)
	// The migration's Job is suspended: it runs when the test says so,
	// after the failover.
	newGitRepo(t, ns, "rev-1", files{
		"s1/cm.yaml": configMap("before", "v1"),
		"s2/m1.yaml": strings.Replace(migrationJob("m1", "1.0.0"), "spec:\n", "spec:\n  suspend: true\n", 1),
		"s2/cm.yaml": configMap("after", "v1"),
	})

	args := []string{"--watch-label-selector=" + selector, "--enable-leader-election",
		"--leader-election-lease-duration=8s", "--leader-election-renew-deadline=6s", "--leader-election-retry-period=1s"}
	env := []string{"RUNTIME_NAMESPACE=kube-system"}
	a := newController(t, "replica-a", env, args...)
	b := newController(t, "replica-b", env, args...)
	a.start()
	g.Eventually(func() string { return leaseHolder(g, selector) }, timeout, poll).ShouldNot(BeEmpty())
	leader := leaseHolder(g, selector)
	b.start()

	obj := newStageSet(ns, stage("s1"), stage("s2"))
	obj.Labels = map[string]string{testLabel: "failover"}
	g.Expect(kube.Create(ctx, obj)).To(Succeed())
	jobName := migration.JobName("app", "s2", "1.0.0")
	g.Eventually(func() int { return jobs.created(jobName) }, timeout, poll).Should(Equal(1))
	before := &corev1.ConfigMap{}
	g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "before"}, before)).To(Succeed())

	g.Expect(a.running() && leaseHolder(g, selector) == leader).To(BeTrue(), "replica a is not the leader any more")
	a.kill()
	killed := time.Now()
	g.Eventually(func() string { return leaseHolder(g, selector) }, timeout, 50*time.Millisecond).ShouldNot(Or(Equal(leader), BeEmpty()))
	failover := time.Since(killed)
	t.Logf("failover: %s from SIGKILL to the new leader", failover.Round(10*time.Millisecond))

	// The new leader reaches the migration (its own MigrationStarted
	// event) and waits on the Job, still suspended; then it may run.
	g.Eventually(func() int32 { return eventCount(g, ns, stagesetv1.MigrationStartedReason) }, timeout, poll).Should(BeNumerically(">=", 2))
	t.Logf("the new leader waits on the migration %s after the SIGKILL", time.Since(killed).Round(10*time.Millisecond))
	job := &batchv1.Job{}
	g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: jobName}, job)).To(Succeed())
	g.Expect(job.Spec.Suspend).To(HaveValue(BeTrue()))
	g.Expect(job.Status.CompletionTime).To(BeNil())
	g.Expect(kube.Patch(ctx, job, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":false}}`)))).To(Succeed())
	waitReady(g, obj, "rev-1")
	t.Logf("Ready %s after the SIGKILL", time.Since(killed).Round(10*time.Millisecond))

	g.Expect(jobs.total()).To(Equal(1), "Jobs: %v", jobs.names())
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	now := &corev1.ConfigMap{}
	g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "before"}, now)).To(Succeed())
	g.Expect(now.UID).To(Equal(before.UID))
	g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "after"}, now)).To(Succeed())
	g.Expect(b.running()).To(BeTrue(), fmt.Sprintf("replica b ended (%d starts)", b.starts))
}
