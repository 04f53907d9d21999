package action

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// jobObject builds a Job as the controller would from the artifact, with no
// namespace so the Runner's applies.
func jobObject(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "main", Image: "busybox"}},
		}}},
	}
	u, err := runtimeToUnstructured(job)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// finishJob completes or fails a Job as the Job controller would.
func finishJob(ctx context.Context, ns, name string, succeed bool, message string) error {
	return testenv.FinishJob(ctx, env.Client, ns, name, succeed, message)
}

func TestRunJobs_success(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	jobs := []*unstructured.Unstructured{jobObject(t, "migrate"), jobObject(t, "seed")}

	done := make(chan error, 1)
	go func() { done <- runner(ns).RunJobs(context.Background(), jobs, time.Minute) }()

	g.Eventually(func() error { return finishJob(context.Background(), ns, "migrate", true, "") }, 10*time.Second).Should(Succeed())
	g.Consistently(done, 1500*time.Millisecond).ShouldNot(Receive(), "seed has not completed")
	g.Expect(finishJob(context.Background(), ns, "seed", true, "")).To(Succeed())

	var err error
	g.Eventually(done, 10*time.Second).Should(Receive(&err))
	g.Expect(err).NotTo(HaveOccurred())
}

func TestRunJobs_failure(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)

	done := make(chan error, 1)
	go func() {
		done <- runner(ns).RunJobs(context.Background(), []*unstructured.Unstructured{jobObject(t, "migrate")}, time.Minute)
	}()

	g.Eventually(func() error {
		return finishJob(context.Background(), ns, "migrate", false, "Job has reached the specified backoff limit")
	}, 10*time.Second).Should(Succeed())

	var err error
	g.Eventually(done, 10*time.Second).Should(Receive(&err))
	g.Expect(err).To(MatchError(ContainSubstring("Job/" + ns + "/migrate failed: Job has reached the specified backoff limit")))
}

func TestRunJobs_existingJobIsWaitedFor(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	existing := jobObject(t, "migrate")
	existing.SetNamespace(ns)
	g.Expect(env.Client.Create(context.Background(), existing)).To(Succeed())
	g.Expect(finishJob(context.Background(), ns, "migrate", true, "")).To(Succeed())

	g.Expect(runner(ns).RunJobs(context.Background(), []*unstructured.Unstructured{jobObject(t, "migrate")}, time.Minute)).To(Succeed())
}

func TestRunJobs_timeout(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	err := runner(ns).RunJobs(context.Background(), []*unstructured.Unstructured{jobObject(t, "migrate")}, 2*time.Second)
	g.Expect(err).To(MatchError(ContainSubstring("timed out waiting for Job/" + ns + "/migrate (0 of 1 completions)")))
}

func TestRunAction_jobVerb(t *testing.T) {
	g := NewWithT(t)
	a := stagesetv1.Action{Name: "migrate", Job: &stagesetv1.JobAction{Path: "jobs"}}
	g.Expect(Verb(a)).To(Equal("job"))
	g.Expect(runner("default").Run(context.Background(), a, time.Minute)).To(MatchError(ContainSubstring("job actions are run by the controller")))
}

func runtimeToUnstructured(obj any) (*unstructured.Unstructured, error) {
	m, err := kruntime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
