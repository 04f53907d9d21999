package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/jitter"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// maxHistory is how many rollouts status.history keeps.
const maxHistory = 5

// finishRun is the one place a run's outcome becomes conditions, an event, a
// metric, the requeue and the final status patch.
func (r *StageSetReconciler) finishRun(ctx context.Context, s *run, before readyState, runErr error) (ctrl.Result, error) {
	obj := s.obj
	result := ctrl.Result{}
	if isBookkeeping(runErr) {
		return r.retryBookkeeping(ctx, s, runErr)
	}
	s.tokens.record(obj)

	if runErr == nil {
		message := fmt.Sprintf("Applied revision: %s (%d stages)", obj.Status.LastAppliedRevision, len(obj.Spec.Stages))
		result.RequeueAfter = jitter.JitteredIntervalDuration(obj.GetRequeueAfter())
		if obj.Status.PendingUpdate != nil {
			// Healthy at the old revision, with the new one waiting for a
			// window.
			message += fmt.Sprintf("; revision %s deferred: %s", s.revision, opening(s.deferredUntil, !s.deferredUntil.IsZero()))
			result.RequeueAfter = min(result.RequeueAfter, s.untilOpening())
		}
		conditions.MarkTrue(obj, meta.ReadyCondition, stagesetv1.SucceededReason, "%s", message)
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		obj.Status.ObservedGeneration = obj.Generation
	} else {
		re := asRunError(runErr, stagesetv1.StageFailedReason)
		r.markNotReady(obj, re.reason, re.Error())
		// The run acted on this generation, even if it failed: kstatus then
		// reports the failure instead of a generation still in progress.
		obj.Status.ObservedGeneration = obj.Generation
		switch {
		case re.terminal:
			// Nothing heals this but a spec change, which triggers a run.
			conditions.Delete(obj, meta.ReconcilingCondition)
			conditions.MarkStalled(obj, re.reason, "%s", re.Error())
		case re.waiting:
			conditions.Delete(obj, meta.ReconcilingCondition)
			conditions.Delete(obj, meta.StalledCondition)
			result.RequeueAfter = r.DependencyRequeueInterval
			if re.requeueAfter > 0 {
				result.RequeueAfter = re.requeueAfter
			}
		default:
			conditions.Delete(obj, meta.StalledCondition)
			if conditions.Has(obj, meta.ReconcilingCondition) {
				conditions.MarkReconciling(obj, meta.ProgressingWithRetryReason, "%s", re.Error())
			}
			result.RequeueAfter = obj.GetRetryInterval()
			log.FromContext(ctx).Error(re, "reconcile failed", "reason", re.reason)
		}
	}

	after := readyOf(obj)
	// A steady-state run that changes nothing leaves the status as it is.
	// An update of what is applied at the same revisions (a changed patch
	// or substitution) is news like a new revision set.
	rolledOut := s.applied && (s.kind == kindFirstRollout || s.kind == kindUpdate)
	if s.revisions != nil && (rolledOut || after != before) {
		r.recordHistory(s, after.reason)
	}
	// News: Ready changed status or reason, a new revision set was applied,
	// or a failure changed (another error). A healthy StageSet whose message
	// only changes (a deferred revision) emits nothing more here.
	transition := after.status != before.status || after.reason != before.reason
	failureChanged := after.status != string(metav1.ConditionTrue) && after.message != before.message

	// Events follow the status patch that records them: when the patch
	// fails, the retry finds the same transition and reports it then, once.
	// Drift was corrected in the cluster whatever becomes of the patch, so
	// it is reported before it.
	r.reportDrift(s)
	if err := r.patchStatus(ctx, obj, s.patcher); err != nil {
		return ctrl.Result{}, err
	}
	if transition || failureChanged || rolledOut {
		r.event(obj, s.revision, after)
	}
	r.Metrics.RecordReconcile(obj.Namespace, obj.Name, after.reason)
	news := transition || failureChanged || rolledOut || !s.corrected.empty() || !s.detected.empty()
	logFinished(ctx, s, after.reason, result.RequeueAfter, news)
	return result, nil
}

// logFinished logs the end of a run as the Flux controllers do
// ("Reconciliation finished in 1.2s, next run in 10m0s"), with the revision
// and the result. A steady run with nothing to tell (no drift, no change of
// Ready) logs at debug level only, so that the info log of a quiet fleet
// stays quiet.
func logFinished(ctx context.Context, s *run, result string, next time.Duration, news bool) {
	logger := log.FromContext(ctx)
	if s.kind == kindSteady && !news {
		logger = logger.V(1)
	}
	logger.Info(fmt.Sprintf("Reconciliation finished in %s, next run in %s", time.Since(s.started).Round(time.Millisecond), next.Round(time.Second)),
		"revision", s.revision, "result", result, "kind", s.kind.String())
}

// retryBookkeeping ends a run whose own records could not be written: it
// reports no failure (no Ready change, no event, no metric) and hands the
// error to the workqueue, whose backoff retries the run soon. The status is
// written on a best-effort basis, Reconciling saying why.
func (r *StageSetReconciler) retryBookkeeping(ctx context.Context, s *run, runErr error) (ctrl.Result, error) {
	// Drift already corrected is reported whatever becomes of the rest.
	r.reportDrift(s)
	conditions.MarkReconciling(s.obj, meta.ProgressingWithRetryReason, "%s; retrying", runErr)
	_ = r.patchStatus(ctx, s.obj, s.patcher)
	return ctrl.Result{}, runErr
}

// restartRun ends a run that a new source revision made obsolete: it is not a
// failure, so no event and no Ready change; the run starts again at once
// with the new revision.
func (r *StageSetReconciler) restartRun(ctx context.Context, s *run) (ctrl.Result, error) {
	r.reportDrift(s)
	conditions.MarkReconciling(s.obj, meta.ProgressingReason, "Revision set %s superseded by a new revision; restarting", s.revision)
	if err := r.patchStatus(ctx, s.obj, s.patcher); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: time.Millisecond}, nil
}

// event emits the Ready transition as an event, with the revision for
// notification-controller.
func (r *StageSetReconciler) event(obj *stagesetv1.StageSet, revision string, ready readyState) {
	eventType := corev1.EventTypeNormal
	// A first rollout held by a closed window is Ready=False by design, not
	// a failure: Normal, as SPEC §9 lists UpdateDeferred.
	if ready.status == string(metav1.ConditionFalse) && ready.reason != stagesetv1.UpdateDeferredReason {
		eventType = corev1.EventTypeWarning
	}
	r.eventf(obj, revision, eventType, ready.reason, "%s", ready.message)
}

// eventf emits an event of obj for Kubernetes and notification-controller,
// annotated with the revision it is about. A Warning whose reason has a
// runbook links to it, as the Ready message does.
func (r *StageSetReconciler) eventf(obj *stagesetv1.StageSet, revision, eventType, reason, format string, args ...any) {
	message := fmt.Sprintf(format, args...)
	if eventType == corev1.EventTypeWarning {
		message = r.Runbooks.Annotate(reason, message)
	}
	r.EventRecorder.AnnotatedEventf(obj, nil, revisionAnnotations(revision), eventType, reason, "Reconcile", "%s", message)
}

// markNotReady sets Ready=False with the reason and the message, ending with
// the runbook link of the reason exactly once (a message carried over from
// the last run keeps one link).
func (r *StageSetReconciler) markNotReady(obj *stagesetv1.StageSet, reason, message string) {
	conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", r.Runbooks.Annotate(reason, message))
}

// revisionAnnotations carries the revision to notification-controller.
func revisionAnnotations(revision string) map[string]string {
	if revision == "" {
		return nil
	}
	return map[string]string{stagesetv1.GroupName + "/" + eventv1.MetaRevisionKey: revision}
}

// recordHistory adds the run to status.history when it applied a new revision
// set or changed the outcome, newest first, keeping maxHistory entries. A run
// with the same revision set and result as the newest entry updates it.
func (r *StageSetReconciler) recordHistory(s *run, result string) {
	entry := stagesetv1.RolloutRecord{
		Revisions: s.revisions,
		StartedAt: metav1.NewTime(s.started),
		Duration:  metav1.Duration{Duration: time.Since(s.started).Round(time.Millisecond)},
		Result:    result,
	}
	history := s.obj.Status.History
	if len(history) > 0 && history[0].Result == result && maps.Equal(history[0].Revisions, s.revisions) {
		history[0] = entry
		return
	}
	history = append([]stagesetv1.RolloutRecord{entry}, history...)
	if len(history) > maxHistory {
		history = history[:maxHistory]
	}
	s.obj.Status.History = history
}
