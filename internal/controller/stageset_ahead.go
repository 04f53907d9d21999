package controller

import (
	"context"

	"github.com/fluxcd/pkg/ssa"

	"github.com/stageset/stageset-controller/internal/apply"
)

// aheadValidation is the validation pass of the next stage of a rollout,
// run while the current stage is applied, pruned and waited for: the
// hand-off from one stage to the next then does not include a dry-run of
// every object of the next stage (issue 15: hand-offs under 100 ms).
//
// Its answer is used only when nothing between it and the next stage's
// apply can have changed how the API server judges that stage's objects:
//   - it starts only when the current stage runs no migration and no
//     action, and the next stage no migration and no pre action: their Jobs
//     and webhooks could change anything;
//   - it is thrown away when the current stage created, changed or pruned
//     an object that may change how others are judged
//     (apply.ChangesValidation: anything but workload kinds, ConfigMaps,
//     Secrets, Services...).
//
// Otherwise, or when it failed, the next stage is validated at its turn as
// always. Apply also validates again when the objects differ from those
// validated, so a stage stays all-or-nothing.
type aheadValidation struct {
	stage  string
	cancel context.CancelFunc
	done   chan struct{}
	result *apply.Validation
	err    error
	// stale is set by judge, from the run's goroutine only.
	stale bool
}

// validateAhead starts validating the stage after current in the
// background, when its result can be used (see aheadValidation).
func (s *run) validateAhead(ctx context.Context, mgr *apply.Manager, current plannedStage) {
	s.ahead = nil
	i := s.planIndex(current.spec.Name)
	if i < 0 || i+1 >= len(s.plans) {
		return
	}
	next := s.plans[i+1]
	if len(current.migrations) > 0 || current.spec.Actions != nil || len(next.migrations) > 0 || hasPreActions(next.spec) {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	a := &aheadValidation{stage: next.spec.Name, cancel: cancel, done: make(chan struct{})}
	// Read from s.obj here, not in the goroutine: status patches decode
	// into s.obj meanwhile.
	owner, opts := s.owner(next.spec.Name), apply.ApplyOptions{Force: next.spec.Force, IgnoreRules: s.ignoreRules()}
	go func() {
		defer close(a.done)
		a.result, a.err = mgr.Validate(ctx, owner, next.objects, opts)
	}()
	s.ahead = a
}

// judge marks the validation stale when changes (an apply's or a prune's)
// can change how the API server judges other objects.
func (a *aheadValidation) judge(changes *ssa.ChangeSet) {
	if a != nil && changes != nil && apply.ChangesValidation(changes) {
		a.stale = true
	}
}

// take returns the validation of the stage when it ran ahead, passed and
// is still valid; nil otherwise.
func (a *aheadValidation) take(stage string) *apply.Validation {
	if a == nil || a.stage != stage {
		return nil
	}
	<-a.done
	a.cancel()
	if a.err != nil || a.stale {
		return nil
	}
	return a.result
}

// stop cancels the validation and waits for it: a run leaves no request
// behind.
func (a *aheadValidation) stop() {
	if a == nil {
		return
	}
	a.cancel()
	<-a.done
}

// planIndex is the index of a stage in s.plans; -1 when it has none.
func (s *run) planIndex(name string) int {
	for i, p := range s.plans {
		if p.spec.Name == name {
			return i
		}
	}
	return -1
}
