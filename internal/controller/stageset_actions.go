package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/action"
)

// runActions runs a stage's pre or post actions in order, once per revision
// of the stage: done records the revision they last completed for.
func (s *run) runActions(ctx context.Context, stage stagesetv1.Stage, group string, actions []stagesetv1.Action, revision string, done *string) error {
	if len(actions) == 0 || *done == revision {
		return nil
	}
	runner := s.actionRunner()
	for _, a := range actions {
		if err := runner.Run(ctx, a, s.obj.GetStageTimeout(stage)); err != nil {
			return fmt.Errorf("%s actions: %w", group, err)
		}
	}
	*done = revision
	return nil
}

// runOnFailure runs a failed stage's onFailure actions, best effort: each
// one's result is reported in an OnFailureAction Warning event, and none of
// them changes the outcome of the run.
func (s *run) runOnFailure(ctx context.Context, stage stagesetv1.Stage) {
	if stage.Actions == nil || s.kube == nil {
		return
	}
	runner := s.actionRunner()
	for _, a := range stage.Actions.OnFailure {
		result := "succeeded"
		if err := runner.Run(ctx, a, s.obj.GetStageTimeout(stage)); err != nil {
			result = "failed: " + err.Error()
		}
		s.r.EventRecorder.AnnotatedEventf(s.obj, nil, revisionAnnotations(s.revision), corev1.EventTypeWarning,
			stagesetv1.OnFailureActionReason, "Reconcile", "onFailure action %q (%s) of stage %q %s", a.Name, action.Verb(a), stage.Name, result)
	}
}

// actionRunner runs actions with the StageSet's identity.
func (s *run) actionRunner() *action.Runner {
	return &action.Runner{Client: s.kube, Namespace: s.obj.Namespace, AllowedHosts: s.r.AllowedActionHosts}
}
