package action

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RunJobs creates the Jobs of a job action and waits, within timeout, until
// every one has completed. The caller builds the Jobs from the stage's
// artifact; a Job without a namespace gets the Runner's.
//
// A Job that already exists is waited for rather than recreated: a
// controller restarted in the middle of an action then picks up the run it
// started instead of failing on the name. The first Job that fails ends the
// action with the Job's failure message and, when Logs can read it, the end
// of the log of its last pod.
func (r *Runner) RunJobs(ctx context.Context, jobs []*unstructured.Unstructured, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	for _, job := range jobs {
		if job.GetNamespace() == "" {
			job.SetNamespace(r.Namespace)
		}
		if err := r.Client.Create(ctx, job); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s: %w", utils.FmtUnstructured(job), err)
		}
	}
	for _, job := range jobs {
		if err := r.waitJob(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// waitJob polls a Job until it completes or fails.
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
