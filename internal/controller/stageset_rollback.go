package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/snapshot"
)

// saveSnapshot stores what a successful rollout applied. A failure does not
// fail the rollout: one the API server or the network may heal (conflict,
// 5xx, a lost connection) is a bookkeeping error, retried so that a later
// rollback does not go back to an older snapshot; any other is reported
// (RollbackStoreFailed).
func (s *run) saveSnapshot(ctx context.Context) error {
	snap := &snapshot.Snapshot{Revisions: s.revisions, Revision: s.revision}
	for _, plan := range s.plans {
		snap.Stages = append(snap.Stages, snapshot.Stage{Name: plan.spec.Name, Revision: plan.revision, Objects: plan.objects})
	}
	err := s.r.Snapshots.Save(ctx, s.obj, snap)
	if err != nil && transientAPIError(err) {
		return bookkeepingFailed(fmt.Errorf("storing the snapshot of revision %s: %w", s.revision, err))
	}
	if err != nil {
		s.r.eventf(s.obj, s.revision, corev1.EventTypeWarning, stagesetv1.RollbackStoreFailedReason, "Storing the snapshot of revision %s failed: %s", s.revision, err)
	}
	return nil
}

// rollback restores the last good snapshot on the stages the failed run
// touched (SPEC §7): in stage order, re-apply the snapshot's objects, prune
// what the failed run added, wait for health. Without a snapshot (the first
// rollout failed) the failure stands as it is.
func (s *run) rollback(ctx context.Context, mgr *apply.Manager, failedStage string, cause error) error {
	snap, err := s.lastSnapshot(ctx)
	if err != nil {
		return failed(stagesetv1.RollbackFailedReason, fmt.Errorf("%s; rollback impossible: reading the snapshot: %w", cause, err))
	}
	if snap == nil {
		return cause
	}
	for _, stage := range s.obj.Spec.Stages {
		if err := s.restoreStage(ctx, mgr, stage, snap.Stage(stage.Name)); err != nil {
			return failed(stagesetv1.RollbackFailedReason, fmt.Errorf("%s; rollback to revision %s failed at stage %q: %w", cause, snap.Revision, stage.Name, err))
		}
		if stage.Name == failedStage {
			break
		}
	}
	return &runError{reason: stagesetv1.RolledBackReason, stage: failedStage,
		err: fmt.Errorf("rollout of revision %s failed at stage %q (%s); rolled back to revision %s", s.revision, failedStage, stageCause(cause), snap.Revision)}
}

// restoreStage re-applies one stage of the snapshot (nothing when the stage
// is new) and deletes what the failed run added to it.
func (s *run) restoreStage(ctx context.Context, mgr *apply.Manager, stage stagesetv1.Stage, snap *snapshot.Stage) error {
	ctx, cancel := context.WithTimeout(ctx, s.obj.GetStageTimeout(stage))
	defer cancel()
	owner := s.owner(stage.Name)
	var objects []*unstructured.Unstructured
	revision := ""
	if snap != nil {
		objects, revision = build.CopyObjects(snap.Objects), snap.Revision
	}
	status := s.stageStatus(stage.Name)
	// An empty inventory, not a nil list: the CRD requires entries, and a
	// status patch without them would fail the rollback for ever.
	restored := apply.NewInventory(nil)
	var changeSet *ssa.ChangeSet
	if len(objects) > 0 {
		cs, err := mgr.Apply(ctx, owner, objects, apply.ApplyOptions{Force: stage.Force, IgnoreRules: s.ignoreRules()})
		if err != nil {
			return err
		}
		restored, changeSet = apply.NewInventory(cs), cs
	}
	if status.Inventory != nil {
		stale, err := apply.Stale(status.Inventory, restored)
		if err != nil {
			return err
		}
		if _, _, err := mgr.Delete(ctx, owner, stale); err != nil {
			return fmt.Errorf("pruning what the failed rollout added: %w", err)
		}
	}
	status.Inventory, status.Revision = restored, revision
	if changeSet != nil {
		if err := mgr.Wait(ctx, waitSet(changeSet), s.waitOptions(stage)); err != nil {
			return fmt.Errorf("health check: %w", err)
		}
	}
	message := "Rolled back to revision " + revision
	if snap == nil {
		message = "Emptied: the stage is new in the failed revision"
	}
	s.setPhase(stage.Name, stagesetv1.StagePhaseReady, message)
	return nil
}

// hold keeps the rolled back state: the restored snapshot is re-asserted and
// Ready stays False RolledBack with its message.
func (s *run) hold(ctx context.Context, mgr *apply.Manager) error {
	if err := s.reassertSnapshot(ctx, mgr); err != nil {
		return err
	}
	return &runError{reason: stagesetv1.RolledBackReason, waiting: true, requeueAfter: s.obj.GetRequeueAfter(),
		err: errors.New(conditions.GetMessage(s.obj, meta.ReadyCondition))}
}

// reassertSnapshot corrects drift from the last good snapshot, per
// driftDetection.mode, while the source serves a revision that is not rolled
// out (deferred or held).
func (s *run) reassertSnapshot(ctx context.Context, mgr *apply.Manager) error {
	mode := s.obj.GetDriftDetectionMode()
	if mode == stagesetv1.DriftDetectionDisabled {
		return nil
	}
	snap, err := s.lastSnapshot(ctx)
	if err != nil {
		return failed(stagesetv1.StageFailedReason, fmt.Errorf("re-asserting the last good snapshot: reading it: %w", err))
	}
	if snap == nil {
		return nil
	}
	// The snapshot is what the stages last applied successfully. A stage
	// removed from the spec since is not re-asserted: its objects are the
	// teardown's business, never the snapshot's to bring back.
	opts := apply.ApplyOptions{IgnoreRules: s.ignoreRules(), Reassert: true}
	for _, st := range snap.Stages {
		if !s.inSpec(st.Name) {
			continue
		}
		owner := s.owner(st.Name)
		if mode == stagesetv1.DriftDetectionWarn {
			cs, err := mgr.Diff(ctx, owner, build.CopyObjects(st.Objects), opts)
			if err != nil {
				return stageFailed(stagesetv1.StageFailedReason, st.Name, fmt.Errorf("drift detection: %w", err))
			}
			s.detected.record(st.Name, cs)
			continue
		}
		cs, err := mgr.Apply(ctx, owner, build.CopyObjects(st.Objects), opts)
		s.corrected.record(st.Name, cs)
		if err != nil {
			return stageFailed(stagesetv1.StageFailedReason, st.Name, fmt.Errorf("re-asserting revision %s: %w", st.Revision, err))
		}
	}
	return nil
}

// lastSnapshot loads the last good snapshot once per run: the gate, the
// drift correction of a deferred or held run and the rollback all read it,
// and it only changes when a run succeeds. A snapshot that fails to load
// (one that fails verification among them) is never applied: it is
// reported with a Warning event, and each caller refuses to go on from it.
func (s *run) lastSnapshot(ctx context.Context) (*snapshot.Snapshot, error) {
	if !s.snapshotLoaded {
		s.snapshot, s.snapshotErr = s.r.Snapshots.Load(ctx, s.obj)
		s.snapshotLoaded = true
		if s.snapshotErr != nil && !interrupted(ctx) {
			s.r.eventf(s.obj, s.revision, corev1.EventTypeWarning, stagesetv1.RollbackStoreFailedReason,
				"The last good snapshot cannot be used: %s", s.snapshotErr)
		}
	}
	return s.snapshot, s.snapshotErr
}

// inSpec tells whether the spec still has a stage of that name.
func (s *run) inSpec(stage string) bool {
	for _, st := range s.obj.Spec.Stages {
		if st.Name == stage {
			return true
		}
	}
	return false
}

// stageCause is the message of a stage failure without its "stage ... failed:"
// prefix, which the rollback message already names.
func stageCause(err error) string {
	var re *runError
	if errors.As(err, &re) && errors.Unwrap(re.err) != nil {
		return errors.Unwrap(re.err).Error()
	}
	return err.Error()
}
