package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/action"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/names"
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
// this run of the action (actionJobName).
func (s *run) runAction(ctx context.Context, plan plannedStage, group string, a stagesetv1.Action) error {
	timeout := s.obj.GetStageTimeout(plan.spec)
	if a.Job == nil {
		return s.actionRunner().Run(ctx, a, timeout)
	}
	jobs := build.CopyObjects(plan.actionJobs[actionKey(group, a.Name)])
	for _, job := range jobs {
		job.SetName(s.actionJobName(plan, group, a.Name, job.GetName()))
	}
	if err := s.actionRunner().RunJobs(ctx, s.jobOwner(plan.spec.Name), jobs, action.Timeout(a, timeout)); err != nil {
		return fmt.Errorf("job action %q: %w", a.Name, err)
	}
	return nil
}

// actionJobName names a Job of a job action: its name in the artifact, '-'
// and a hash of the StageSet, the stage, the action and the revision, cut to
// the 63 characters a Job name may have. Each revision runs its own Jobs,
// and a restarted controller waits on the Jobs of its run; two StageSets, or
// two actions, that build the same Job from one artifact never share it.
func (s *run) actionJobName(plan plannedStage, group, actionName, job string) string {
	hash := names.Hash(actionHashLength, s.obj.Namespace, s.obj.Name, plan.spec.Name, group, actionName, job, plan.revision)
	return names.Join(job, hash, "", validation.DNS1123LabelMaxLength)
}

// actionHashLength is the number of hex digits of the hash in action Job
// names: 32 bits, as in migration Job names.
const actionHashLength = 8

// jobOwner is what marks the Jobs a stage runs as this StageSet's: RunJobs
// labels the Jobs it creates with it, and waits on an existing Job only when
// it carries it.
func (s *run) jobOwner(stage string) action.JobOwner {
	return action.JobOwner{
		StageSet: s.obj.Namespace + "/" + s.obj.Name,
		Labels:   s.owner(stage).Labels(),
	}
}

// actionKey names an action within its stage: names are unique per group.
func actionKey(group, name string) string { return group + "/" + name }

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
		if err := s.runAction(ctx, plan, "onFailure", a); err != nil {
			result = "failed: " + err.Error()
		}
		s.r.eventf(s.obj, s.revision, corev1.EventTypeWarning, stagesetv1.OnFailureActionReason, "onFailure action %q (%s) of stage %q %s", a.Name, action.Verb(a), stage.Name, result)
	}
}

// buildActionJobs builds the Jobs of a stage's job actions from their paths
// in the stage's artifact; runAction names them for its run.
func buildActionJobs(root, targetNamespace string, stage stagesetv1.Stage) (map[string][]*unstructured.Unstructured, error) {
	if stage.Actions == nil {
		return nil, nil
	}
	jobs := map[string][]*unstructured.Unstructured{}
	for group, actions := range map[string][]stagesetv1.Action{"pre": stage.Actions.Pre, "post": stage.Actions.Post, "onFailure": stage.Actions.OnFailure} {
		for _, a := range actions {
			if a.Job == nil {
				continue
			}
			objects, err := build.Build(build.Input{Root: root, Path: a.Job.Path, TargetNamespace: targetNamespace})
			if err != nil {
				return nil, fmt.Errorf("job action %q: %w", a.Name, err)
			}
			for _, o := range objects {
				if o.GroupVersionKind().GroupKind() != (schema.GroupKind{Group: "batch", Kind: "Job"}) {
					return nil, fmt.Errorf("job action %q: %s is not a batch Job", a.Name, objectID(o))
				}
			}
			jobs[actionKey(group, a.Name)] = objects
		}
	}
	return jobs, nil
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
