package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/window"
)

// runKind is what a run is. decide settles it once, from the pinned revision
// set, the spec and the persisted status, and the run follows one path per
// kind (execute).
type runKind int

const (
	// kindUndecided is a run that ended before it knew what it was (invalid
	// spec, a dependency or a source not ready).
	kindUndecided runKind = iota
	// kindFirstRollout rolls out a StageSet that has nothing applied yet.
	kindFirstRollout
	// kindUpdate rolls out a change of what is applied: a new revision set,
	// or a spec or input change that changes the built objects.
	kindUpdate
	// kindReapply rolls out again what is applied, after a run that did not
	// end steady: a failure retried, a spec change that builds the same
	// objects (drift settings among them), a deferred revision set that was
	// withdrawn. It runs like an update, but what it creates or configures
	// is drift, reported as such.
	kindReapply
	// kindSteady re-asserts what the last run applied: same revision set,
	// generation and inputs, last run successful, nothing deferred. It
	// corrects (or, in Warn mode, reports) drift and publishes no progress.
	kindSteady
	// kindHeld keeps a rolled back revision set out: the last good snapshot
	// is re-asserted until something changes (heldAfterRollback).
	kindHeld
	// kindDeferred holds a change while no update window is open: the last
	// good snapshot is re-asserted and status.pendingUpdate names the change.
	kindDeferred
)

func (k runKind) String() string {
	return [...]string{"undecided", "first rollout", "update", "reapply", "steady", "held", "deferred"}[k]
}

// rollsOut tells whether the run applies the built stages as a rollout:
// migrations, actions and progress, rollback on failure.
func (k runKind) rollsOut() bool {
	return k == kindFirstRollout || k == kindUpdate || k == kindReapply
}

// countsDrift tells whether what the run creates or configures is drift: it
// re-asserts objects already applied at the same revision set.
func (k runKind) countsDrift() bool {
	return k == kindSteady || k == kindReapply
}

// decide tells what this run is. It builds the stages only when the answer
// depends on what they build: a changed input may build the same objects.
func (s *run) decide(ctx context.Context) (runKind, error) {
	status := &s.obj.Status
	if s.heldAfterRollback() {
		return kindHeld, nil
	}
	asLastSuccess := !s.newRevisions && status.ObservedGeneration == s.obj.Generation &&
		conditions.IsReady(s.obj) && status.PendingUpdate == nil
	if asLastSuccess && status.LastAppliedInputs == s.inputsDigest {
		return kindSteady, nil
	}

	// The stages are built before a change is gated, so that a broken
	// revision is reported while its window is still closed.
	if _, err := s.stages(ctx); err != nil {
		return kindUndecided, err
	}
	changed, err := s.changesWhatIsApplied(ctx)
	switch {
	case err != nil:
		return kindUndecided, err
	case !changed && asLastSuccess:
		// The inputs changed, but not what they build.
		return kindSteady, nil
	case !changed:
		return kindReapply, nil
	}
	if open, err := s.windowOpen(); err != nil {
		return kindUndecided, err
	} else if !open {
		return kindDeferred, nil
	}
	if len(status.LastAppliedRevisions) == 0 {
		return kindFirstRollout, nil
	}
	return kindUpdate, nil
}

// heldAfterRollback tells that this run would retry the revision set that
// was just rolled back: it is held until a source revision, the spec, a
// substituteFrom value or a requestedAt token changes, so failure and
// rollback do not loop.
func (s *run) heldAfterRollback() bool {
	attempted := s.obj.Status.LastAttemptedInputs
	return conditions.GetReason(s.obj, meta.ReadyCondition) == stagesetv1.RolledBackReason &&
		s.sameAsAttempted && s.obj.Status.ObservedGeneration == s.obj.Generation && !s.requested &&
		(attempted == "" || attempted == s.inputsDigest)
}

// windowOpen tells whether an update window lets a change through now (SPEC
// §5); a forceAt token lets it through once. The parsed windows are kept
// for deferRollout.
func (s *run) windowOpen() (bool, error) {
	schedule, err := window.Parse(s.obj.Spec.UpdateWindows)
	if err != nil {
		return false, stalled(stagesetv1.InvalidSpecReason, fmt.Errorf("invalid update window: %w", err))
	}
	s.windows = schedule
	return s.forced || schedule.Open(s.r.now()), nil
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
