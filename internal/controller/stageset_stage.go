package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/ssa"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/log"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/action"
	"github.com/stageset/stageset-controller/internal/apply"
)

// applyStage rolls out one stage: pending migrations and pre actions, then
// its objects (applyObjects), then post actions. The stage's budget (its
// timeout) covers all of it. A failure of a migration or a pre action leaves
// the stage's objects untouched.
func (s *run) applyStage(ctx context.Context, mgr *apply.Manager, plan plannedStage) error {
	stage := plan.spec
	validated := s.ahead.take(stage.Name)
	s.validateAhead(ctx, mgr, plan)
	ctx, cancel := context.WithTimeout(ctx, s.obj.GetStageTimeout(stage))
	defer cancel()

	ranNow := map[string]bool{}
	if err := s.migrate(ctx, stage, plan, ranNow); err != nil {
		return err
	}
	if stage.Actions != nil {
		if err := s.runActions(ctx, plan, action.GroupPre, stage.Actions.Pre, &s.stageStatus(stage.Name).PreActionsRevision); err != nil {
			return s.failStage(ctx, stage.Name, err)
		}
	}
	changeSet, err := s.applyObjects(ctx, mgr, plan, apply.ApplyOptions{Force: stage.Force, IgnoreRules: s.ignoreRules(), Validation: validated})
	if err != nil {
		return err
	}
	// Post actions, once per revision: the stage is Ready only after them.
	if stage.Actions != nil {
		if err := s.runActions(ctx, plan, action.GroupPost, stage.Actions.Post, &s.stageStatus(stage.Name).PostActionsRevision); err != nil {
			return s.failStage(ctx, stage.Name, err)
		}
	}
	s.cleanupMigrationJobs(ctx, stage, ranNow)
	return s.stageReady(ctx, plan, changeSet)
}

// reassertStage re-asserts one stage of a steady run: its objects are
// applied again, or in Warn mode diffed by a server-side dry-run that writes
// nothing. No migration or action runs.
func (s *run) reassertStage(ctx context.Context, mgr *apply.Manager, plan plannedStage) error {
	stage := plan.spec
	ctx, cancel := context.WithTimeout(ctx, s.obj.GetStageTimeout(stage))
	defer cancel()
	opts := apply.ApplyOptions{Force: stage.Force, IgnoreRules: s.ignoreRules(), Reassert: true}
	if s.obj.GetDriftDetectionMode() == stagesetv1.DriftDetectionWarn {
		changeSet, err := mgr.Diff(ctx, s.owner(stage.Name), plan.objects, opts)
		if err != nil {
			return s.failStage(ctx, stage.Name, fmt.Errorf("drift detection: %w", err))
		}
		s.detected.record(stage.Name, changeSet)
		return nil
	}
	changeSet, err := s.applyObjects(ctx, mgr, plan, opts)
	if err != nil {
		return err
	}
	return s.stageReady(ctx, plan, changeSet)
}

// applyObjects applies a stage's objects, prunes what left the stage, waits
// for their health and records the stage's inventory; it returns what the
// apply did. Status is patched when the stage starts
// applying and when it starts verifying, so users can watch a rollout live.
func (s *run) applyObjects(ctx context.Context, mgr *apply.Manager, plan plannedStage, opts apply.ApplyOptions) (*ssa.ChangeSet, error) {
	stage := plan.spec
	owner := s.owner(stage.Name)
	// status.stages is only touched through s.stageStatus(name): each patch
	// below re-decodes the StageSet.
	s.stageStatus(stage.Name).Revision = plan.revision
	s.setPhase(stage.Name, stagesetv1.StagePhaseApplying, fmt.Sprintf("Applying %d objects", len(plan.objects)))
	if err := s.patchProgress(ctx, "Applying stage %q (%d/%d)", stage.Name, s.stageIndex(stage.Name)+1, len(s.obj.Spec.Stages)); err != nil {
		return nil, err
	}

	live := apply.NewLiveObjects()
	opts.Live = live
	changeSet, err := mgr.Apply(ctx, owner, plan.objects, opts)
	s.ahead.judge(changeSet)
	if s.kind.countsDrift() {
		s.corrected.record(stage.Name, changeSet)
	}
	if err != nil {
		// Whatever got applied before the failure is recorded, so a later run
		// can prune it.
		if changeSet != nil {
			status := s.stageStatus(stage.Name)
			status.Inventory = apply.MergeInventories(status.Inventory, apply.NewInventory(changeSet))
		}
		return nil, s.failStage(ctx, stage.Name, fmt.Errorf("apply: %w", err))
	}
	newInventory := apply.NewInventory(changeSet)

	pruneErr := s.prune(ctx, mgr, owner, stage, s.stageStatus(stage.Name).Inventory, newInventory)
	s.stageStatus(stage.Name).Inventory = newInventory
	if pruneErr != nil {
		return nil, s.failStage(ctx, stage.Name, pruneErr)
	}

	// Objects already healthy in the API server's answers (ConfigMaps...)
	// are not read again; the phase is published only when there is
	// something to wait for, or post actions to run.
	waitOpts := s.waitOptions(stage)
	waitOpts.Live = live
	if mgr.Settled(ctx, waitSet(changeSet), waitOpts) && !hasPostActions(stage) {
		return changeSet, nil
	}
	s.setPhase(stage.Name, stagesetv1.StagePhaseVerifying, "Waiting for health")
	if err := s.patchProgress(ctx, "Verifying stage %q (%d/%d)", stage.Name, s.stageIndex(stage.Name)+1, len(s.obj.Spec.Stages)); err != nil {
		return nil, err
	}
	// The health wait is what a newer revision may cut short.
	waitCtx, endWait := s.tracked.wait(ctx)
	err = mgr.Wait(waitCtx, waitSet(changeSet), waitOpts)
	if err != nil {
		err = s.failStage(waitCtx, stage.Name, fmt.Errorf("health check: %w", err))
	}
	endWait()
	return changeSet, err
}

// stageReady marks a stage applied, verified and Ready, and logs what the
// apply changed: at info level when a rollout applied it or a steady run
// corrected drift, at debug level when a steady run changed nothing.
func (s *run) stageReady(ctx context.Context, plan plannedStage, changeSet *ssa.ChangeSet) error {
	name := plan.spec.Name
	objects := len(apply.NewInventory(changeSet).Entries)
	summary, changed := summarize(changeSet)
	logger := log.FromContext(ctx)
	if !s.kind.rollsOut() && len(changed) == 0 {
		logger = logger.V(1)
	}
	logger.Info("stage applied", "stage", name, "revision", plan.revision, "kind", s.kind.String(),
		"changes", summary, "changed", changed)
	s.setPhase(name, stagesetv1.StagePhaseReady, fmt.Sprintf("Applied %d objects at revision %s", objects, plan.revision))
	s.r.Metrics.RecordStageApplied(s.obj.Namespace, s.obj.Name, name)
	s.r.Metrics.SetStageReady(s.obj.Namespace, s.obj.Name, name, true)
	if s.nextPatchesSoon(s.stageIndex(name) + 1) {
		s.progressLater("Applied stage %q (%d/%d)", name, s.stageIndex(name)+1, len(s.obj.Spec.Stages))
		return nil
	}
	return s.patchProgress(ctx, "Applied stage %q (%d/%d)", name, s.stageIndex(name)+1, len(s.obj.Spec.Stages))
}

// maxLoggedChanges caps the objects a stage log line names.
const maxLoggedChanges = 20

// summarize counts the entries of a change set by action ("2 created, 1
// configured, 5 unchanged") and names the objects created or configured
// (at most maxLoggedChanges). Only object names go into it, never data.
func summarize(cs *ssa.ChangeSet) (summary string, changed []string) {
	if cs == nil {
		return "", nil
	}
	counts := map[ssa.Action]int{}
	var order []ssa.Action
	for _, e := range cs.Entries {
		if counts[e.Action] == 0 {
			order = append(order, e.Action)
		}
		counts[e.Action]++
		if (e.Action == ssa.CreatedAction || e.Action == ssa.ConfiguredAction) && len(changed) < maxLoggedChanges {
			changed = append(changed, e.Subject+" "+string(e.Action))
		}
	}
	parts := make([]string, 0, len(order))
	for _, a := range order {
		parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
	}
	return strings.Join(parts, ", "), changed
}

// patchProgress publishes the run's progress at a stage boundary, so users
// can watch a rollout live. Steady-state runs publish nothing: their status
// does not change unless something fails.
func (s *run) patchProgress(ctx context.Context, format string, args ...any) error {
	if !s.kind.rollsOut() {
		return nil
	}
	conditions.MarkReconciling(s.obj, meta.ProgressingReason, format, args...)
	if err := s.r.patchStatus(ctx, s.obj, s.patcher); err != nil {
		return bookkeepingFailed(fmt.Errorf("writing the progress of the rollout: %w", err))
	}
	return nil
}

// hasPreActions tells whether pre actions run before the stage applies.
func hasPreActions(stage stagesetv1.Stage) bool {
	return stage.Actions != nil && len(stage.Actions.Pre) > 0
}

// hasPostActions tells whether post actions run after the stage is
// healthy.
func hasPostActions(stage stagesetv1.Stage) bool {
	return stage.Actions != nil && len(stage.Actions.Post) > 0
}

// progressLater records the run's progress for the next status patch,
// which nextPatchesSoon promised: one patch at a stage boundary instead of
// two, where a hand-off is a few milliseconds.
func (s *run) progressLater(format string, args ...any) {
	if s.kind.rollsOut() {
		conditions.MarkReconciling(s.obj, meta.ProgressingReason, format, args...)
	}
}

// nextPatchesSoon tells whether the status is patched again at once when
// the stage of index next starts: it exists, and no pre action runs before
// its "Applying" (or "Migrating") patch. After the last stage, the run's
// final patch follows at once unless removed stages are to be torn down.
func (s *run) nextPatchesSoon(next int) bool {
	if next >= len(s.obj.Spec.Stages) {
		return next == len(s.obj.Spec.Stages) && !s.hasRemovedStages()
	}
	return !hasPreActions(s.obj.Spec.Stages[next])
}

// ignoreRules are the driftDetection.ignore rules of the StageSet.
// owner is the ownership of a stage's objects.
func (s *run) owner(stage string) apply.Owner {
	return apply.Owner{Name: s.obj.Name, Namespace: s.obj.Namespace, Stage: stage}
}

// waitOptions is how a stage's health is checked, by a rollout and by a
// rollback alike.
func (s *run) waitOptions(stage stagesetv1.Stage) apply.WaitOptions {
	return apply.WaitOptions{
		Timeout:          s.obj.GetStageTimeout(stage),
		HealthChecks:     stage.HealthChecks,
		DefaultNamespace: s.obj.Namespace,
		Exprs:            stage.HealthCheckExprs,
		Objects:          stage.IsWaitEnabled(),
		Selector:         s.owner(stage.Name).Labels(),
	}
}

func (s *run) ignoreRules() []stagesetv1.IgnoreRule {
	if s.obj.Spec.DriftDetection == nil {
		return nil
	}
	return s.obj.Spec.DriftDetection.Ignore
}

// prune deletes the objects that left the stage, when the stage prunes.
// Objects whose deletion failed stay in the new inventory and are retried by
// the next run.
func (s *run) prune(ctx context.Context, mgr *apply.Manager, owner apply.Owner, stage stagesetv1.Stage,
	old, current *stagesetv1.ResourceInventory) error {
	if !stage.IsPruneEnabled() || old == nil {
		return nil
	}
	stale, err := apply.Stale(old, current)
	if err != nil || len(stale) == 0 {
		return err
	}
	deleted, failedObjects, err := mgr.Delete(ctx, owner, stale)
	s.ahead.judge(deleted)
	if err != nil {
		current.Entries = append(current.Entries, apply.InventoryOf(failedObjects).Entries...)
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}

// waitSet lists the applied objects to health-check: objects skipped by the
// stageset.io/ssa: Ignore annotation are not the stage's to wait for.
func waitSet(cs *ssa.ChangeSet) object.ObjMetadataSet {
	var set object.ObjMetadataSet
	for _, e := range cs.Entries {
		if e.Action != ssa.SkippedAction {
			set = append(set, e.ObjMetadata)
		}
	}
	return set
}

// failStage marks the stage Failed and returns its StageFailed error.
func (s *run) failStage(ctx context.Context, name string, err error) error {
	if interrupted(ctx) {
		return s.interruptStage(ctx, name, err)
	}
	s.setPhase(name, stagesetv1.StagePhaseFailed, err.Error())
	s.r.Metrics.SetStageReady(s.obj.Namespace, s.obj.Name, name, false)
	return stageFailed(stagesetv1.StageFailedReason, name, err)
}

// interrupted reports whether the run was stopped from outside: a new
// revision superseded its wait, or the controller is stopping. The stage did
// not fail, and the next run takes it up again.
func interrupted(ctx context.Context) bool {
	return errors.Is(ctx.Err(), context.Canceled)
}

// interruptStage puts an interrupted stage back to Pending: no failure is
// recorded, reported or acted upon. The error carries the cause, so that a
// supersession (errSuperseded) restarts the run.
func (s *run) interruptStage(ctx context.Context, name string, err error) error {
	s.setPhase(name, stagesetv1.StagePhasePending, "Interrupted: "+err.Error())
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w (%w)", err, cause)
	}
	return err
}

// stageStatus returns the status entry of a stage, creating it in spec order.
func (s *run) stageStatus(name string) *stagesetv1.StageStatus {
	for i := range s.obj.Status.Stages {
		if s.obj.Status.Stages[i].Name == name {
			return &s.obj.Status.Stages[i]
		}
	}
	entry := stagesetv1.StageStatus{Name: name, Phase: stagesetv1.StagePhasePending}
	s.recordPruneSetting(&entry)
	s.obj.Status.Stages = append(s.obj.Status.Stages, entry)
	s.sortStageStatuses()
	for i := range s.obj.Status.Stages {
		if s.obj.Status.Stages[i].Name == name {
			return &s.obj.Status.Stages[i]
		}
	}
	return nil // unreachable: appended above
}

// sortStageStatuses orders status.stages like spec.stages; stages removed
// from the spec (still being torn down) go last.
func (s *run) sortStageStatuses() {
	order := map[string]int{}
	for i, st := range s.obj.Spec.Stages {
		order[st.Name] = i
	}
	pos := func(name string) int {
		if i, ok := order[name]; ok {
			return i
		}
		return len(order)
	}
	stages := s.obj.Status.Stages
	for i := 1; i < len(stages); i++ {
		for j := i; j > 0 && pos(stages[j].Name) < pos(stages[j-1].Name); j-- {
			stages[j], stages[j-1] = stages[j-1], stages[j]
		}
	}
}

func (s *run) stageIndex(name string) int {
	for i, st := range s.obj.Spec.Stages {
		if st.Name == name {
			return i
		}
	}
	return -1
}

// setPhase moves a stage to a phase; the transition time changes only when
// the phase does. It looks the stage up by name: a status patch re-decodes
// the StageSet, so pointers into status.stages do not survive one.
func (s *run) setPhase(name string, phase stagesetv1.StagePhase, message string) {
	status := s.stageStatus(name)
	if status.Phase != phase || status.LastTransitionTime == nil {
		now := metav1.Now()
		status.LastTransitionTime = &now
	}
	status.Phase = phase
	status.Message = message
}
