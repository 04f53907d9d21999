package action

import (
	"context"
	"errors"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// nodeLogs stands in for the kubelets, which the test API server does not
// have: it serves the log of one container. The real path through the API
// server is tested end to end on kwok nodes (tests/e2e).
type nodeLogs struct{ pod, container, log string }

func (n nodeLogs) TailLog(_ context.Context, _, pod, container string) (string, error) {
	if pod != n.pod || container != n.container {
		return "", errors.New("no such container log")
	}
	return n.log, nil
}

// jobPod creates a pod of the Job the way the Job controller labels it.
func jobPod(g Gomega, job *unstructured.Unstructured, name string, exitCodes map[string]int32) {
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: job.GetNamespace(), Name: name, Labels: map[string]string{
			"batch.kubernetes.io/controller-uid": string(job.GetUID()), "batch.kubernetes.io/job-name": job.GetName(),
		}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{
			{Name: "proxy", Image: "proxy"}, {Name: "main", Image: "migrate"},
		}},
	}
	g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
	for container, code := range exitCodes {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: container, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}},
		})
	}
	pod.Status.Phase = corev1.PodFailed
	g.Expect(env.Client.Status().Update(ctx, pod)).To(Succeed())
}

// runFailingJob runs a Job with r, gives it pods, fails it and returns the
// error RunJobs ended with.
func runFailingJob(t *testing.T, r *Runner) error {
	g := NewWithT(t)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		done <- r.RunJobs(ctx, testOwner, []*unstructured.Unstructured{jobObject(t, "migrate")}, time.Minute)
	}()
	job := jobObject(t, "migrate")

	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: "migrate"}, job)
	}, 10*time.Second).Should(Succeed())
	jobPod(g, job, "migrate-first", map[string]int32{"proxy": 0, "main": 1})
	time.Sleep(time.Second) // creation timestamps have a second's resolution
	jobPod(g, job, "migrate-last", map[string]int32{"proxy": 0, "main": 3})
	g.Expect(finishJob(ctx, r.Namespace, "migrate", false, "Job has reached the specified backoff limit")).To(Succeed())

	var err error
	g.Eventually(done, 10*time.Second).Should(Receive(&err))
	return err
}

func TestRunJobs_failureCarriesTheLogTailOfTheLastPod(t *testing.T) {
	r := runner(env.NewNamespace(t))
	r.Logs = nodeLogs{pod: "migrate-last", container: "main", log: "connecting\nERROR: relation \"orders\" is locked\n"}
	err := runFailingJob(t, r)
	NewWithT(t).Expect(err).To(MatchError(HaveSuffix("failed: Job has reached the specified backoff limit\n" +
		"last log lines of pod migrate-last, container main:\nconnecting\nERROR: relation \"orders\" is locked")))
}

// Without logs to read (here the API server has no kubelet to ask), the
// failure message is the Job's alone.
func TestRunJobs_failureWithoutLogs(t *testing.T) {
	r := runner(env.NewNamespace(t))
	r.Logs = &PodLogs{Config: env.Config}
	err := runFailingJob(t, r)
	NewWithT(t).Expect(err).To(MatchError(HaveSuffix("failed: Job has reached the specified backoff limit")))
}
