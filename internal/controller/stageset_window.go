package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/window"
)

// gateRollout holds a new revision set while no update window is open (SPEC
// §5). It returns true when the rollout is deferred: status.pendingUpdate is
// set, the deferral is announced once per revision set, and the run keeps
// re-asserting the last good snapshot instead. A forceAt token lets the
// rollout through once.
func (s *run) gateRollout(ctx context.Context, mgr *apply.Manager) (deferred bool, err error) {
	schedule, err := window.Parse(s.obj.Spec.UpdateWindows)
	if err != nil {
		return false, stalled(stagesetv1.InvalidSpecReason, fmt.Errorf("invalid update window: %w", err))
	}
	now := s.r.now()
	if s.forced || schedule.Open(now) {
		return false, nil
	}

	next, ok := schedule.NextOpening(now)
	pending := &stagesetv1.PendingUpdate{Revisions: s.revisions}
	if ok {
		pending.NextWindowOpens = &metav1.Time{Time: next}
		s.deferredUntil = next
	}
	if s.previousPending == nil || !equalRevisions(s.previousPending.Revisions, s.revisions) {
		// Once per deferred revision set, not per run. With nothing applied
		// yet, the Ready transition to UpdateDeferred is the event.
		s.r.Metrics.RecordUpdateDeferred(s.obj.Namespace, s.obj.Name)
		if len(s.obj.Status.LastAppliedRevisions) > 0 {
			s.r.eventf(s.obj, s.revision, corev1.EventTypeNormal, stagesetv1.UpdateDeferredReason, "Revision %s deferred: %s", s.revision, opening(next, ok))
		}
	}
	s.obj.Status.PendingUpdate = pending
	// The source already serves the new revision: drift correction goes on
	// from what was last applied.
	return true, s.reassertSnapshot(ctx, mgr)
}

// deferral is the outcome of a deferred run: Ready stays True at the applied
// revision, naming the pending one; a StageSet with nothing applied yet is
// Ready=False UpdateDeferred.
func (s *run) deferral() error {
	when := opening(s.deferredUntil, !s.deferredUntil.IsZero())
	if len(s.obj.Status.LastAppliedRevisions) == 0 {
		return &runError{reason: stagesetv1.UpdateDeferredReason, waiting: true, requeueAfter: s.untilOpening(),
			err: fmt.Errorf("revision %s deferred: %s", s.revision, when)}
	}
	return nil
}

// untilOpening is the requeue of a deferred run: exactly at the next opening,
// or the interval when no window will open.
func (s *run) untilOpening() time.Duration {
	if s.deferredUntil.IsZero() {
		return s.obj.GetRequeueAfter()
	}
	if d := s.deferredUntil.Sub(s.r.now()); d > 0 {
		return d
	}
	return time.Millisecond
}

func opening(next time.Time, ok bool) string {
	if !ok {
		return "no update window opens within a year"
	}
	return "the next update window opens at " + next.UTC().Format(time.RFC3339)
}

// changesWhatIsApplied tells whether the run would change the cluster: a new
// revision set, or built objects that differ from the last good snapshot
// (the spec changed stages, patches, substitutions...).
func (s *run) changesWhatIsApplied(ctx context.Context) (bool, error) {
	if s.newRevisions {
		return true, nil
	}
	snap, err := s.lastSnapshot(ctx)
	if err != nil || snap == nil || len(snap.Stages) != len(s.plans) {
		// Without a readable snapshot, treat the run as a change.
		return true, nil
	}
	for i, plan := range s.plans {
		if snap.Stages[i].Name != plan.spec.Name {
			return true, nil
		}
		same, err := snap.Stages[i].Matches(plan.objects, s.owner(plan.spec.Name).SetLabels)
		if err != nil || !same {
			return true, err
		}
	}
	return false, nil
}
