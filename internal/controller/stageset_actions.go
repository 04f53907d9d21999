package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/action"
	"github.com/stageset/stageset-controller/internal/build"
)

// runActions runs a stage's pre or post actions in order, once per revision
// of the stage: done records the revision they last completed for.
func (s *run) runActions(ctx context.Context, plan plannedStage, group string, actions []stagesetv1.Action, done *string) error {
	if len(actions) == 0 || *done == plan.revision {
		return nil
	}
	for _, a := range actions {
		if err := s.runAction(ctx, plan, group, a); err != nil {
			return fmt.Errorf("%s actions: %w", group, err)
		}
	}
	*done = plan.revision
	return nil
}

// runAction runs one action; job actions run the Jobs built from their path
// in the stage's artifact (plannedStage.actionJobs), each under its name for
// this run of the action (action.JobRun).
func (s *run) runAction(ctx context.Context, plan plannedStage, group string, a stagesetv1.Action) error {
	timeout := s.obj.GetStageTimeout(plan.spec)
	if a.Job == nil {
		return s.actionRunner().Run(ctx, a, timeout)
	}
	jobs := build.CopyObjects(plan.actionJobs[action.Key(group, a.Name)])
	for _, job := range jobs {
		job.SetName(s.jobRun(plan, group, a.Name, job.GetName()).Name())
	}
	if err := s.actionRunner().RunJobs(ctx, s.jobOwner(plan.spec.Name), jobs, action.Timeout(a, timeout)); err != nil {
		return fmt.Errorf("job action %q: %w", a.Name, err)
	}
	return nil
}

// jobRun identifies the run of a Job of a job action by this StageSet.
func (s *run) jobRun(plan plannedStage, group, actionName, job string) action.JobRun {
	return action.JobRun{Namespace: s.obj.Namespace, StageSet: s.obj.Name, Stage: plan.spec.Name,
		Group: group, Action: actionName, Job: job, Revision: plan.revision}
}

// jobOwner is what marks the Jobs a stage runs as this StageSet's: RunJobs
// labels the Jobs it creates with it, and waits on an existing Job only when
// it carries it.
func (s *run) jobOwner(stage string) action.JobOwner {
	return action.JobOwner{
		StageSet: s.obj.Namespace + "/" + s.obj.Name,
		Labels:   s.owner(stage).Labels(),
	}
}

// runOnFailure runs a failed stage's onFailure actions, best effort: each
// one's result is reported in an OnFailureAction Warning event, and none of
// them changes the outcome of the run.
func (s *run) runOnFailure(ctx context.Context, plan plannedStage) {
	stage := plan.spec
	if stage.Actions == nil || s.kube == nil {
		return
	}
	for _, a := range stage.Actions.OnFailure {
		result := "succeeded"
		if err := s.runAction(ctx, plan, action.GroupOnFailure, a); err != nil {
			result = "failed: " + err.Error()
		}
		s.r.eventf(s.obj, s.revision, corev1.EventTypeWarning, stagesetv1.OnFailureActionReason, "onFailure action %q (%s) of stage %q %s", a.Name, action.Verb(a), stage.Name, result)
	}
}

// actionRunner runs actions with the StageSet's identity.
func (s *run) actionRunner() *action.Runner {
	return &action.Runner{
		Client:       s.kube,
		Logs:         &action.PodLogs{Config: s.kubeConfig},
		Namespace:    s.obj.Namespace,
		AllowedHosts: s.r.AllowedActionHosts,
	}
}
