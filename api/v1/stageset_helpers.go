package v1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultTimeout is the per-stage budget when neither the stage nor the
// StageSet sets one.
const DefaultTimeout = 5 * time.Minute

// GetConditions returns the status conditions of the StageSet.
func (in *StageSet) GetConditions() []metav1.Condition {
	return in.Status.Conditions
}

// SetConditions sets the status conditions of the StageSet.
func (in *StageSet) SetConditions(conditions []metav1.Condition) {
	in.Status.Conditions = conditions
}

// GetDependsOn returns the StageSets this one depends on.
func (in *StageSet) GetDependsOn() []meta.DependencyReference {
	return in.Spec.DependsOn
}

// GetLastHandledForceRequestStatus returns a pointer to
// status.lastHandledForceAt, for meta.ShouldHandleForceRequest.
func (in *StageSet) GetLastHandledForceRequestStatus() *string {
	return &in.Status.LastHandledForceAt
}

// GetTimeout returns the default per-stage budget.
func (in *StageSet) GetTimeout() time.Duration {
	if in.Spec.Timeout != nil && in.Spec.Timeout.Duration > 0 {
		return in.Spec.Timeout.Duration
	}
	return DefaultTimeout
}

// GetRetryInterval returns the cadence of reconciles after a failure, which
// defaults to the interval.
func (in *StageSet) GetRetryInterval() time.Duration {
	if in.Spec.RetryInterval != nil && in.Spec.RetryInterval.Duration > 0 {
		return in.Spec.RetryInterval.Duration
	}
	return in.Spec.Interval.Duration
}

// GetRequeueAfter returns the cadence of reconciles after a success: the
// interval, or the drift detection interval when it is shorter.
func (in *StageSet) GetRequeueAfter() time.Duration {
	interval := in.Spec.Interval.Duration
	if d := in.Spec.DriftDetectionInterval; d != nil && d.Duration > 0 && d.Duration < interval {
		return d.Duration
	}
	return interval
}

// GetDeletionPolicy returns the deletion policy, MirrorPrune when unset.
func (in *StageSet) GetDeletionPolicy() string {
	if in.Spec.DeletionPolicy == "" {
		return DeletionPolicyMirrorPrune
	}
	return in.Spec.DeletionPolicy
}

// GetDriftDetectionMode returns the drift detection mode, Enabled when unset.
func (in *StageSet) GetDriftDetectionMode() string {
	if in.Spec.DriftDetection == nil || in.Spec.DriftDetection.Mode == "" {
		return DriftDetectionEnabled
	}
	return in.Spec.DriftDetection.Mode
}

// GetStageTimeout returns the budget of a stage: its own timeout, else the
// StageSet's.
func (in *StageSet) GetStageTimeout(stage Stage) time.Duration {
	if stage.Timeout != nil && stage.Timeout.Duration > 0 {
		return stage.Timeout.Duration
	}
	return in.GetTimeout()
}

// GetStageSourceRef returns the source of a stage, with its API version and
// namespace defaulted. ok is false when neither the stage nor the StageSet
// names a source.
func (in *StageSet) GetStageSourceRef(stage Stage) (ref SourceReference, ok bool) {
	switch {
	case stage.SourceRef != nil:
		ref = *stage.SourceRef
	case in.Spec.SourceRef != nil:
		ref = *in.Spec.SourceRef
	default:
		return SourceReference{}, false
	}
	if ref.APIVersion == "" {
		ref.APIVersion = SourceAPIVersion
	}
	if ref.Namespace == "" {
		ref.Namespace = in.Namespace
	}
	return ref, true
}

// GetSourceRefs returns every distinct source the stages read, in stage
// order, defaulted as GetStageSourceRef defaults them.
func (in *StageSet) GetSourceRefs() []SourceReference {
	var refs []SourceReference
	seen := map[string]bool{}
	for _, stage := range in.Spec.Stages {
		if ref, ok := in.GetStageSourceRef(stage); ok && !seen[ref.String()] {
			seen[ref.String()] = true
			refs = append(refs, ref)
		}
	}
	return refs
}

// GetStageTargetNamespace returns the default namespace of a stage's
// namespaced objects: its own, else the StageSet's, else empty (the objects
// keep the namespace they declare).
func (in *StageSet) GetStageTargetNamespace(stage Stage) string {
	if stage.TargetNamespace != "" {
		return stage.TargetNamespace
	}
	return in.Spec.TargetNamespace
}

// GetPath returns the stage's directory inside the artifact, "./" when unset.
func (in Stage) GetPath() string {
	if in.Path == "" {
		return "./"
	}
	return in.Path
}

// IsPruneEnabled tells whether objects that leave the stage are deleted.
func (in Stage) IsPruneEnabled() bool {
	return in.Prune == nil || *in.Prune
}

// IsWaitEnabled tells whether every applied object is health-checked.
func (in Stage) IsWaitEnabled() bool {
	return in.Wait == nil || *in.Wait
}

// String returns the reference as <Kind>/<namespace>/<name>, the key of the
// revision maps in the status.
func (in SourceReference) String() string {
	if in.Namespace == "" {
		return in.Kind + "/" + in.Name
	}
	return in.Kind + "/" + in.Namespace + "/" + in.Name
}
