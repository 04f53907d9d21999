package cli

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func newFixedEventsCommand(k *kubeOptions) *cobra.Command {
	return eventsCommand(k, &eventsOptions{now: func() time.Time { return fixedNow }})
}

// createJob creates a Job in ns with labels; no Job controller runs in
// the test API server, so it stays as created.
func createJob(t *testing.T, ns, name string, labels map[string]string) {
	t.Helper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "run", Image: "busybox"}},
		}}},
	}
	if err := env.Client.Create(context.Background(), job); err != nil {
		t.Fatal(err)
	}
}

// event is an Event of kind/name in ns, last seen ago before fixedNow.
type event struct {
	kind, name, typ, reason, message string
	ago                              time.Duration
	count                            int32
	// id names the Event; else the API server generates a name.
	id string
	// micro uses eventTime (the events.k8s.io way) instead of
	// first/lastTimestamp.
	micro bool
}

func createEvent(t *testing.T, ns string, e event) {
	t.Helper()
	at := fixedNow.Add(-e.ago)
	obj := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{GenerateName: e.name + ".", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: e.kind, Name: e.name, Namespace: ns},
		Type:           e.typ,
		Reason:         e.reason,
		Message:        e.message,
		Source:         corev1.EventSource{Component: "stageset-controller"},
	}
	switch {
	case e.micro:
		obj.EventTime = metav1.NewMicroTime(at)
		obj.ReportingController, obj.ReportingInstance, obj.Action = "stageset.io/controller", "test", "Reconcile"
	case e.count > 1:
		obj.Count = e.count
		obj.FirstTimestamp = metav1.NewTime(at.Add(-time.Hour))
		obj.LastTimestamp = metav1.NewTime(at)
	default:
		obj.Count = 1
		obj.FirstTimestamp = metav1.NewTime(at)
		obj.LastTimestamp = metav1.NewTime(at)
	}
	if e.id != "" {
		obj.GenerateName, obj.Name = "", e.id
	}
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

// mine are the labels the controller puts on the Jobs of StageSet name's
// stage a.
func mine(ns, name string) map[string]string {
	return apply.Owner{Name: name, Namespace: ns, Stage: "a"}.Labels()
}

func TestEventsListsTheStageSetsAndItsJobsOldestFirst(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	createWithStatus(t, &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec:       stagesetv1.StageSetSpec{Stages: []stagesetv1.Stage{{Name: "a"}}},
	})
	createJob(t, ns, "shop-a-m-1", mine(ns, "shop"))
	createJob(t, ns, "unlabelled", nil)
	createJob(t, ns, "other-a-m-1", mine(ns, "other"))

	// Created out of order: the output is sorted by time, not creation.
	createEvent(t, ns, event{kind: "StageSet", name: "shop", typ: "Warning", reason: "HealthCheckFailed", message: "stage a: timeout", ago: 2 * time.Minute, count: 3})
	createEvent(t, ns, event{kind: "StageSet", name: "shop", typ: "Normal", reason: "Progressing", message: "stage a applied", ago: 10 * time.Minute})
	createEvent(t, ns, event{kind: "Job", name: "shop-a-m-1", typ: "Normal", reason: "SuccessfulCreate", message: "Created pod: shop-a-m-1-x", ago: 5 * time.Minute, micro: true})
	// Two in the same second: they keep the order they were written in,
	// whatever their names.
	createEvent(t, ns, event{id: "z", kind: "StageSet", name: "shop", typ: "Normal", reason: "Progressing", message: "first of the same second", ago: time.Minute})
	createEvent(t, ns, event{id: "a", kind: "StageSet", name: "shop", typ: "Normal", reason: "Succeeded", message: "second of the same second", ago: time.Minute})
	// Not the StageSet's: another StageSet, an unlabelled Job, another
	// StageSet's Job.
	createEvent(t, ns, event{kind: "StageSet", name: "other", typ: "Normal", reason: "Progressing", message: "not mine", ago: time.Minute})
	createEvent(t, ns, event{kind: "Job", name: "unlabelled", typ: "Normal", reason: "SuccessfulCreate", message: "not mine", ago: time.Minute})
	createEvent(t, ns, event{kind: "Job", name: "other-a-m-1", typ: "Normal", reason: "SuccessfulCreate", message: "not mine", ago: time.Minute})

	out, err := runAdmin(t, ns, newFixedEventsCommand, "events", "shop", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "events.golden", out)

	_, err = runAdmin(t, ns, newFixedEventsCommand, "events", "absent", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/absent not found"))

	createWithStatus(t, &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "quiet", Namespace: ns},
		Spec:       stagesetv1.StageSetSpec{Stages: []stagesetv1.Stage{{Name: "a"}}},
	})
	out, err = runAdmin(t, ns, newFixedEventsCommand, "events", "quiet", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("No events found for StageSet test-xxxxxxxx/quiet.\n"))
}

// --watch prints the events emitted after it started, including those of
// a Job started after it, and not those of other objects; it ends
// cleanly when its context is cancelled.
func TestEventsWatchPrintsNewEvents(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	createWithStatus(t, &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec:       stagesetv1.StageSetSpec{Stages: []stagesetv1.Stage{{Name: "a"}}},
	})
	createEvent(t, ns, event{kind: "StageSet", name: "shop", typ: "Normal", reason: "Progressing", message: "before the watch", ago: 10 * time.Minute})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testenv.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runAs(ctx, env.Config, &out, newFixedEventsCommand, "events", "shop", "-n", ns, "--watch")
	}()
	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(ContainSubstring("before the watch"))

	createEvent(t, ns, event{kind: "StageSet", name: "other", typ: "Normal", reason: "Progressing", message: "not mine", ago: time.Minute})
	createJob(t, ns, "unlabelled", nil)
	createEvent(t, ns, event{kind: "Job", name: "unlabelled", typ: "Normal", reason: "SuccessfulCreate", message: "not mine", ago: time.Minute})
	createEvent(t, ns, event{kind: "StageSet", name: "shop", typ: "Warning", reason: "StageFailed", message: "after the watch started", ago: time.Minute})
	createJob(t, ns, "shop-a-m-2", mine(ns, "shop"))
	createEvent(t, ns, event{kind: "Job", name: "shop-a-m-2", typ: "Normal", reason: "SuccessfulCreate", message: "a Job started after the watch", ago: 30 * time.Second})

	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(And(
		MatchRegexp(`StageSet/shop +after the watch started`),
		MatchRegexp(`Job/shop-a-m-2 +a Job started after the watch`)))
	cancel()
	g.Eventually(done, testenv.Timeout).Should(Receive(BeNil()))
	g.Expect(out.String()).NotTo(ContainSubstring("not mine"))

	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	g.Expect(lines).To(HaveLen(4))
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"}))
	g.Expect(strings.Fields(lines[1])[:3]).To(Equal([]string{"10m", "Normal", "Progressing"}))
}
