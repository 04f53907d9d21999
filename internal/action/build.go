package action

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/names"
)

// Groups of a stage's actions, as they appear in Job names and Key.
const (
	GroupPre       = "pre"
	GroupPost      = "post"
	GroupOnFailure = "onFailure"
)

// HasJobs tells whether any action of the stage is a job action.
func HasJobs(stage stagesetv1.Stage) bool {
	if stage.Actions == nil {
		return false
	}
	for _, group := range [][]stagesetv1.Action{stage.Actions.Pre, stage.Actions.Post, stage.Actions.OnFailure} {
		for _, a := range group {
			if a.Job != nil {
				return true
			}
		}
	}
	return false
}

// Key names an action within its stage: names are unique per group.
func Key(group, name string) string { return group + "/" + name }

// BuildJobs builds the Jobs of a stage's job actions from their paths in the
// stage's artifact (root), keyed by Key. Anything but a batch Job is refused:
// a job action runs Jobs, never other objects with the StageSet's identity.
// maxObjects limits the objects of each build as build.Input.MaxObjects does.
func BuildJobs(root, targetNamespace string, stage stagesetv1.Stage, maxObjects int) (map[string][]*unstructured.Unstructured, error) {
	if stage.Actions == nil {
		return nil, nil
	}
	jobs := map[string][]*unstructured.Unstructured{}
	for group, actions := range map[string][]stagesetv1.Action{
		GroupPre: stage.Actions.Pre, GroupPost: stage.Actions.Post, GroupOnFailure: stage.Actions.OnFailure,
	} {
		for _, a := range actions {
			if a.Job == nil {
				continue
			}
			objects, err := build.Build(build.Input{Root: root, Path: a.Job.Path, TargetNamespace: targetNamespace, MaxObjects: maxObjects})
			if err != nil {
				return nil, fmt.Errorf("job action %q: %w", a.Name, err)
			}
			for _, o := range objects {
				if gk := o.GroupVersionKind().GroupKind(); gk != (schema.GroupKind{Group: "batch", Kind: "Job"}) {
					return nil, fmt.Errorf("job action %q: %s %s is not a batch Job", a.Name, gk, o.GetName())
				}
			}
			jobs[Key(group, a.Name)] = objects
		}
	}
	return jobs, nil
}

// JobRun identifies one run of one Job of a job action.
type JobRun struct {
	// Namespace and StageSet name the StageSet that runs it.
	Namespace, StageSet  string
	Stage, Group, Action string
	// Job is the Job's name in the artifact.
	Job string
	// Revision is the stage's revision: each revision runs its own Jobs.
	Revision string
}

// jobHashLength is the number of hex digits of the hash in action Job names:
// 32 bits, as in migration Job names.
const jobHashLength = 8

// Name is the name of the Job for this run: its name in the artifact, '-'
// and a hash of the StageSet, the stage, the action and the revision, cut to
// the 63 characters a Job name may have. A restarted controller waits on the
// Jobs of its run; two StageSets, or two actions, that build the same Job
// from one artifact never share it.
func (j JobRun) Name() string {
	hash := names.Hash(jobHashLength, j.Namespace, j.StageSet, j.Stage, j.Group, j.Action, j.Job, j.Revision)
	return names.Join(j.Job, hash, "", validation.DNS1123LabelMaxLength)
}
