package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	"sigs.k8s.io/controller-runtime/pkg/log"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
)

// hasRemovedStages tells whether status.stages holds stages that are no
// longer in the spec (teardownRemovedStages has work).
func (s *run) hasRemovedStages() bool {
	for _, status := range s.obj.Status.Stages {
		if s.stageIndex(status.Name) < 0 {
			return true
		}
	}
	return false
}

// teardownRemovedStages deletes, in reverse stage order, the objects of
// stages that are in the status but no longer in the spec, unless the stage
// had prune: false when a run last recorded it (recordPruneSettings).
func (s *run) teardownRemovedStages(ctx context.Context, mgr *apply.Manager) error {
	inSpec := map[string]bool{}
	for _, st := range s.obj.Spec.Stages {
		inSpec[st.Name] = true
	}
	for i := len(s.obj.Status.Stages) - 1; i >= 0; i-- {
		status := s.obj.Status.Stages[i]
		if inSpec[status.Name] {
			continue
		}
		// A stage recorded with prune: false leaves its objects, and
		// its migrations' records, in place.
		remaining, gone, err := teardownStage(ctx, mgr, s.obj, status, !status.PruneDisabled)
		if err == nil && status.PruneDisabled && status.Inventory != nil && len(status.Inventory.Entries) > 0 {
			log.FromContext(ctx).Info("removed stage had prune disabled: its objects stay", "stage", status.Name,
				"objects", len(status.Inventory.Entries))
		}
		if err == nil && gone {
			// Its data is gone: a stage added again under the name migrates
			// afresh.
			err = s.r.forgetMigrations(ctx, s.obj, []string{status.Name})
		}
		if err != nil {
			s.obj.Status.Stages[i].Inventory = remaining
			s.obj.Status.Stages[i].Message = err.Error()
			return failed(stagesetv1.StageFailedReason, fmt.Errorf("tearing down removed stage %q: %w", status.Name, err))
		}
		s.obj.Status.Stages = append(s.obj.Status.Stages[:i], s.obj.Status.Stages[i+1:]...)
		s.r.Metrics.DeleteStage(s.obj.Namespace, s.obj.Name, status.Name)
	}
	return nil
}

// teardownStage deletes the inventory of a stage when del is true, and
// returns what could not be deleted.
//
// gone tells that every object of the stage is gone: none was kept by
// stageset.io/prune: disabled or for belonging elsewhere now. Only then is
// the data its migrations migrated gone with it.
func teardownStage(ctx context.Context, mgr *apply.Manager, obj *stagesetv1.StageSet, status stagesetv1.StageStatus, del bool) (remaining *stagesetv1.ResourceInventory, gone bool, err error) {
	if !del {
		return nil, false, nil
	}
	if status.Inventory == nil || len(status.Inventory.Entries) == 0 {
		return nil, true, nil
	}
	objects, err := apply.InventoryObjects(status.Inventory)
	if err != nil {
		return status.Inventory, false, err
	}
	owner := apply.Owner{Name: obj.Name, Namespace: obj.Namespace, Stage: status.Name}
	deleted, failedObjects, err := mgr.Delete(ctx, owner, objects)
	if err != nil {
		return apply.InventoryOf(failedObjects), false, err
	}
	for _, e := range deleted.Entries {
		if e.Action == ssa.SkippedAction {
			return nil, false, nil
		}
	}
	return nil, true, nil
}
