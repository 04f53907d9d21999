package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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
// in the stage's artifact (plannedStage.actionJobs).
func (s *run) runAction(ctx context.Context, plan plannedStage, group string, a stagesetv1.Action) error {
	timeout := s.obj.GetStageTimeout(plan.spec)
	if a.Job == nil {
		return s.actionRunner().Run(ctx, a, timeout)
	}
	jobs := build.CopyObjects(plan.actionJobs[actionKey(group, a.Name)])
	if err := s.actionRunner().RunJobs(ctx, jobs, action.Timeout(a, timeout)); err != nil {
		return fmt.Errorf("job action %q: %w", a.Name, err)
	}
	return nil
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
// in the stage's artifact, named per revision so each revision runs its own.
func buildActionJobs(root, targetNamespace, revision string, stage stagesetv1.Stage) (map[string][]*unstructured.Unstructured, error) {
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
				o.SetName(perRevisionName(o.GetName(), revision))
			}
			jobs[actionKey(group, a.Name)] = objects
		}
	}
	return jobs, nil
}

// perRevisionName suffixes a Job name with a short hash of the revision,
// within the 63 characters a Job name may have.
func perRevisionName(name, revision string) string {
	sum := sha256.Sum256([]byte(revision))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	if len(name)+len(suffix) > 63 {
		name = strings.TrimRight(name[:63-len(suffix)], "-.")
	}
	return name + suffix
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
