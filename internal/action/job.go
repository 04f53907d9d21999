package action

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// JobOwner is the stage that Jobs run for: the Jobs RunJobs creates carry
// its labels, and an existing Job is waited on only when it carries them.
type JobOwner struct {
	// StageSet is the namespace/name of the StageSet, named in refusals.
	StageSet string
	// Labels are the stage's ownership labels (apply.Owner.Labels).
	Labels map[string]string
}

// RunJobs creates the Jobs of a job action or a migration for owner and
// waits, within timeout, until every one has completed. The caller builds
// the Jobs from the stage's artifact; a Job without a namespace gets the
// Runner's.
//
// A Job that already exists is waited for rather than recreated: a
// controller restarted in the middle of an action then picks up the run it
// started instead of failing on the name. It is only waited for when it is
// the one the controller would have created: it carries owner's labels and
// the same stageset.io/migration annotation as the Job to run; otherwise
// RunJobs fails naming it, so that a completed Job someone else created
// under a migration's name never counts as the migration. Labels can be
// forged by whoever may create Jobs in the namespace: with the hash in the
// names this refuses accidental and naive collisions, it does not make a
// Job writer of the namespace harmless.
//
// The first Job that fails ends the action with the Job's failure message
// and, when Logs can read it, the end of the log of its last pod.
func (r *Runner) RunJobs(ctx context.Context, owner JobOwner, jobs []*unstructured.Unstructured, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	utils.SetCommonMetadata(jobs, owner.Labels, nil)
	for _, job := range jobs {
		if job.GetNamespace() == "" {
			job.SetNamespace(r.Namespace)
		}
		err := r.Client.Create(ctx, job)
		if apierrors.IsAlreadyExists(err) {
			err = r.adopt(ctx, owner, job)
		} else if err != nil {
			err = fmt.Errorf("creating %s: %w", utils.FmtUnstructured(job), err)
		}
		if err != nil {
			return err
		}
	}
	for _, job := range jobs {
		if err := r.waitJob(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// adopt reads the Job that exists under job's name and checks that it is
// the one the controller would have created; job then takes its UID, so
// that the wait notices a Job replaced under the same name.
func (r *Runner) adopt(ctx context.Context, owner JobOwner, job *unstructured.Unstructured) error {
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(job.GroupVersionKind())
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(job), existing); err != nil {
		return fmt.Errorf("reading %s, which exists already: %w", utils.FmtUnstructured(job), err)
	}
	if mismatch := claimMismatch(owner, job, existing); mismatch != "" {
		use := "refusing to wait on it"
		if version, ok := job.GetAnnotations()[stagesetv1.MigrationAnnotation]; ok {
			use = fmt.Sprintf("refusing to count it as migration %q", version)
		}
		return fmt.Errorf("%s exists but was not created by StageSet %s (%s): %s",
			utils.FmtUnstructured(job), owner.StageSet, mismatch, use)
	}
	job.SetUID(existing.GetUID())
	return nil
}

// claimMismatch returns what existing lacks of the marks the controller puts
// on job, or "" when it carries them all: every ownership label, and the
// migration annotation of job (none when job has none).
func claimMismatch(owner JobOwner, job, existing *unstructured.Unstructured) string {
	labels := existing.GetLabels()
	for _, key := range slices.Sorted(maps.Keys(owner.Labels)) {
		if got, ok := labels[key]; !ok {
			return fmt.Sprintf("label %s missing", key)
		} else if got != owner.Labels[key] {
			return fmt.Sprintf("label %s is %q", key, got)
		}
	}
	want, wantOK := job.GetAnnotations()[stagesetv1.MigrationAnnotation]
	got, gotOK := existing.GetAnnotations()[stagesetv1.MigrationAnnotation]
	switch {
	case wantOK && !gotOK:
		return fmt.Sprintf("annotation %s missing", stagesetv1.MigrationAnnotation)
	case got != want:
		return fmt.Sprintf("annotation %s is %q", stagesetv1.MigrationAnnotation, got)
	}
	return ""
}

// waitJob polls a Job until it completes or fails. A Job whose UID is no
// longer the one created or adopted was replaced under the same name: it is
// not the Job that was checked, so the wait fails.
func (r *Runner) waitJob(ctx context.Context, job *unstructured.Unstructured) error {
	key := client.ObjectKeyFromObject(job)
	var last string
	err := wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		current := &unstructured.Unstructured{}
		current.SetGroupVersionKind(job.GroupVersionKind())
		if err := r.Client.Get(ctx, key, current); err != nil {
			if readRefused(err) || apierrors.IsNotFound(err) {
				return false, fmt.Errorf("reading %s: %w", utils.FmtUnstructured(job), err)
			}
			// Keep the progress already seen: it says more than a read
			// failing as the timeout nears.
			if last == "" {
				last = fmt.Sprintf("reading failed: %v", err)
			}
			return false, nil
		}
		if uid := job.GetUID(); uid != "" && current.GetUID() != uid {
			return false, fmt.Errorf("%s was replaced while the controller waited on it", utils.FmtUnstructured(job))
		}
		done, failure, progress := jobState(current)
		last = progress
		if failure != "" {
			return false, fmt.Errorf("%s failed: %s%s", utils.FmtUnstructured(job), failure, r.failureLog(ctx, current))
		}
		return done, nil
	})
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("timed out waiting for %s (%s): %w", utils.FmtUnstructured(job), last, context.Cause(ctx))
	}
	return err
}

// jobState reads a Job's status as the Job controller writes it: done when
// the Complete condition is true or enough pods succeeded, failed with the
// Failed condition's message, and otherwise a progress summary for timeout
// messages.
func jobState(job *unstructured.Unstructured) (done bool, failure, progress string) {
	conditions, _, _ := unstructured.NestedSlice(job.Object, "status", "conditions")
	for _, c := range conditions {
		cond, ok := c.(map[string]any)
		if !ok || cond["status"] != "True" {
			continue
		}
		switch cond["type"] {
		case "Complete":
			return true, "", "complete"
		case "Failed":
			msg, _ := cond["message"].(string)
			reason, _ := cond["reason"].(string)
			if msg == "" {
				msg = reason
			}
			if msg == "" {
				msg = "the Job failed"
			}
			return false, msg, "failed"
		}
	}
	succeeded, _, _ := unstructured.NestedInt64(job.Object, "status", "succeeded")
	completions, found, _ := unstructured.NestedInt64(job.Object, "spec", "completions")
	if !found {
		completions = 1
	}
	return succeeded >= completions, "", fmt.Sprintf("%d of %d completions", succeeded, completions)
}
