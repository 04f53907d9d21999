package controller

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
)

// deferRollout holds a change while no update window is open (SPEC §5):
// status.pendingUpdate names it, the deferral is announced once per revision
// set, and the run re-asserts the last good snapshot instead.
func (s *run) deferRollout(ctx context.Context, mgr *apply.Manager) error {
	next, ok := s.windows.NextOpening(s.r.now())
	pending := &stagesetv1.PendingUpdate{Revisions: s.revisions}
	if ok {
		pending.NextWindowOpens = &metav1.Time{Time: next}
		s.deferredUntil = next
	}
	if previous := s.obj.Status.PendingUpdate; previous == nil || !maps.Equal(previous.Revisions, s.revisions) {
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
	if err := s.reassertSnapshot(ctx, mgr); err != nil {
		return err
	}
	return s.deferral()
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
