package action

import (
	"context"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	go func() { done <- runner(ns).RunJobs(context.Background(), testOwner, jobs, time.Minute) }()

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
		done <- runner(ns).RunJobs(context.Background(), testOwner, []*unstructured.Unstructured{jobObject(t, "migrate")}, time.Minute)
	}()

	g.Eventually(func() error {
		return finishJob(context.Background(), ns, "migrate", false, "Job has reached the specified backoff limit")
	}, 10*time.Second).Should(Succeed())

	var err error
	g.Eventually(done, 10*time.Second).Should(Receive(&err))
	g.Expect(err).To(MatchError(ContainSubstring("Job/" + ns + "/migrate failed: Job has reached the specified backoff limit")))
}

// testOwner is the stage the tests run Jobs for.
var testOwner = JobOwner{StageSet: "apps/shop", Labels: map[string]string{
	stagesetv1.NameLabel: "shop", stagesetv1.NamespaceLabel: "apps", stagesetv1.StageLabel: "db",
}}

// migrationObject is a Job that runs migration version, as the controller
// builds it.
func migrationObject(t *testing.T, name, version string) *unstructured.Unstructured {
	job := jobObject(t, name)
	job.SetAnnotations(map[string]string{stagesetv1.MigrationAnnotation: version})
	return job
}

func TestRunJobs_labelsTheJobs(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	done := make(chan error, 1)
	go func() {
		done <- runner(ns).RunJobs(context.Background(), testOwner, []*unstructured.Unstructured{jobObject(t, "migrate")}, time.Minute)
	}()
	job := &batchv1.Job{}
	g.Eventually(func() error {
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "migrate"}, job)
	}, 10*time.Second).Should(Succeed())
	for k, v := range testOwner.Labels {
		g.Expect(job.Labels).To(HaveKeyWithValue(k, v))
	}
	g.Expect(finishJob(context.Background(), ns, "migrate", true, "")).To(Succeed())
	g.Eventually(done, 10*time.Second).Should(Receive(BeNil()))
}

// A controller restarted during a migration finds the Job it created
// (labels and annotation) and waits on it.
func TestRunJobs_ownExistingJobIsWaitedFor(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	existing := migrationObject(t, "migrate", "1.0")
	existing.SetNamespace(ns)
	existing.SetLabels(testOwner.Labels)
	g.Expect(env.Client.Create(context.Background(), existing)).To(Succeed())
	g.Expect(finishJob(context.Background(), ns, "migrate", true, "")).To(Succeed())

	g.Expect(runner(ns).RunJobs(context.Background(), testOwner, []*unstructured.Unstructured{migrationObject(t, "migrate", "1.0")}, time.Minute)).To(Succeed())
}

// A completed Job that someone else created under the name is not the
// migration: RunJobs refuses it, naming the Job and what it lacks.
func TestRunJobs_foreignExistingJobIsRefused(t *testing.T) {
	otherStage := map[string]string{stagesetv1.NameLabel: "shop", stagesetv1.NamespaceLabel: "apps", stagesetv1.StageLabel: "web"}
	tests := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		want        string
	}{
		{"no marks", nil, nil, "label stageset.io/name missing"},
		{"annotation without labels", nil, map[string]string{stagesetv1.MigrationAnnotation: "1.0"}, "label stageset.io/name missing"},
		{"another stage's labels", otherStage, map[string]string{stagesetv1.MigrationAnnotation: "1.0"}, `label stageset.io/stage is "web"`},
		{"labels without annotation", testOwner.Labels, nil, "annotation stageset.io/migration missing"},
		{"another version", testOwner.Labels, map[string]string{stagesetv1.MigrationAnnotation: "2.0"}, `annotation stageset.io/migration is "2.0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			existing := jobObject(t, "migrate")
			existing.SetNamespace(ns)
			existing.SetLabels(tt.labels)
			existing.SetAnnotations(tt.annotations)
			g.Expect(env.Client.Create(context.Background(), existing)).To(Succeed())
			g.Expect(finishJob(context.Background(), ns, "migrate", true, "")).To(Succeed())

			err := runner(ns).RunJobs(context.Background(), testOwner, []*unstructured.Unstructured{migrationObject(t, "migrate", "1.0")}, time.Minute)
			g.Expect(err).To(MatchError(fmt.Sprintf(`Job/%s/migrate exists but was not created by StageSet apps/shop (%s): refusing to count it as migration "1.0"`, ns, tt.want)))
		})
	}
}

// An action Job (no migration annotation) found under its name without the
// ownership labels is not waited on either.
func TestRunJobs_foreignActionJobIsRefused(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	existing := jobObject(t, "smoke")
	existing.SetNamespace(ns)
	g.Expect(env.Client.Create(context.Background(), existing)).To(Succeed())
	err := runner(ns).RunJobs(context.Background(), testOwner, []*unstructured.Unstructured{jobObject(t, "smoke")}, time.Minute)
	g.Expect(err).To(MatchError(ContainSubstring("exists but was not created by StageSet apps/shop (label stageset.io/name missing): refusing to wait on it")))
}

// A Job deleted and re-created under the same name while RunJobs waits is
// not the Job it checked.
func TestRunJobs_replacedJobFails(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	done := make(chan error, 1)
	go func() {
		done <- runner(ns).RunJobs(ctx, testOwner, []*unstructured.Unstructured{jobObject(t, "migrate")}, time.Minute)
	}()
	job := &batchv1.Job{}
	key := client.ObjectKey{Namespace: ns, Name: "migrate"}
	g.Eventually(func() error { return env.Client.Get(ctx, key, job) }, 10*time.Second).Should(Succeed())
	g.Expect(env.Client.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))).To(Succeed())
	forged := jobObject(t, "migrate")
	forged.SetNamespace(ns)
	forged.SetLabels(testOwner.Labels)
	g.Eventually(func() error { return env.Client.Create(ctx, forged) }, 10*time.Second).Should(Succeed())
	g.Expect(finishJob(ctx, ns, "migrate", true, "")).To(Succeed())

	var err error
	g.Eventually(done, 10*time.Second).Should(Receive(&err))
	// The wait may also read the Job between the deletion and the
	// re-creation: either way the forged Job does not count.
	g.Expect(err).To(Or(
		MatchError(ContainSubstring("Job/"+ns+"/migrate was replaced while the controller waited on it")),
		MatchError(ContainSubstring("not found"))))
}

func TestRunJobs_timeout(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	err := runner(ns).RunJobs(context.Background(), testOwner, []*unstructured.Unstructured{jobObject(t, "migrate")}, 2*time.Second)
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
