package apply

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Values of the stageset.io/ssa annotation (SPEC §2).
const (
	// SSAOverride, the default, takes over fields last written by kubectl and
	// removes them when the manifest no longer sets them.
	SSAOverride = "Override"
	// SSAMerge leaves fields written by other managers (kubectl included) in
	// place; only the fields of the manifest are asserted.
	SSAMerge = "Merge"
	// SSAIfNotPresent creates the object when it is missing and never
	// touches it afterwards.
	SSAIfNotPresent = "IfNotPresent"
	// SSAIgnore skips the object altogether.
	SSAIgnore = "Ignore"
)

// ApplyOptions of one stage.
type ApplyOptions struct {
	// Force is stage.force: objects whose immutable fields changed are deleted
	// and created again. Objects annotated stageset.io/force: enabled are
	// always recreated when needed.
	Force bool
	// IgnoreRules are driftDetection.ignore (SPEC §3.1): fields of selected
	// objects that are neither compared nor re-asserted once the object
	// exists, such as /spec/replicas of a Deployment scaled by an HPA. See
	// driftIgnoreRules for how they map onto ssa.
	IgnoreRules []stagesetv1.IgnoreRule
	// Reassert tells that the objects are those the stage last applied
	// successfully (a steady-state run re-asserting them): the validation
	// pass is skipped, as they passed it then. ssa still dry-runs each
	// group of the stage before writing any of it, so a refused object
	// stops its group; objects of earlier groups may have been corrected.
	Reassert bool
}

// Apply sets the owner labels on every object (in place, so the caller's
// copies match what was applied), then applies the whole stage with ssa
// ApplyAllStaged: CRDs, ClusterRoles and Namespaces first, then *Class
// kinds, then the rest. Objects are written only when they drifted, so an
// unchanged object keeps its resourceVersion.
//
// Before anything is written, every object is validated by a server-side
// dry-run (see validate); a stage with one invalid object applies nothing and
// the error names every bad object. Re-asserted objects (opts.Reassert) are
// not validated again: a steady-state run costs two requests per object
// instead of four.
//
// It returns the change set: per object created, configured, unchanged or
// skipped (stageset.io/ssa: Ignore, or IfNotPresent on an existing object).
// An object whose only differences are fields of opts.IgnoreRules is
// unchanged and not written. When the apply fails half-way, the returned change set holds what was
// applied before the failure, so the caller can record it for pruning.
func (m *Manager) Apply(ctx context.Context, owner Owner, objects []*unstructured.Unstructured, opts ApplyOptions) (*ssa.ChangeSet, error) {
	ssaOpts, err := m.ssaApplyOptions(opts)
	if err != nil {
		return nil, err
	}
	owner.SetLabels(objects...)

	if !opts.Reassert {
		if err := m.validate(ctx, objects, ssaOpts); err != nil {
			return nil, err
		}
	}

	// ssa sorts the slice it is given; the caller's order stays as it was.
	stage := append([]*unstructured.Unstructured(nil), objects...)
	cs, err := m.resources.ApplyAllStaged(ctx, stage, ssaOpts)
	if err != nil {
		return cs, fmt.Errorf("applying stage %q: %w", owner.Stage, err)
	}
	return cs, nil
}

// ssaApplyOptions maps the stage options and the per-object annotations of
// SPEC §2 onto ssa, the way kustomize-controller maps its own annotations.
func (m *Manager) ssaApplyOptions(opts ApplyOptions) (ssa.ApplyOptions, error) {
	rules, err := driftIgnoreRules(opts.IgnoreRules)
	if err != nil {
		return ssa.ApplyOptions{}, err
	}
	o := ssa.DefaultApplyOptions()
	o.DriftIgnoreRules = rules
	o.Force = opts.Force
	o.ForceSelector = map[string]string{stagesetv1.ForceAnnotation: stagesetv1.EnabledValue}
	o.ExclusionSelector = map[string]string{stagesetv1.SSAAnnotation: SSAIgnore}
	o.IfNotPresentSelector = map[string]string{stagesetv1.SSAAnnotation: SSAIfNotPresent}
	o.Cleanup = ssa.ApplyCleanupOptions{
		// The client-side apply annotation would otherwise keep a stale copy
		// of the object that kubectl diffs against.
		Annotations: []string{corev1.LastAppliedConfigAnnotation},
		// Fields last written by kubectl (any kubectl-* manager: apply, edit,
		// patch, server-side apply) are taken over, so Override reverts
		// manual changes and removes fields the manifest dropped. The
		// controller's own Update manager is not listed: pre/post actions
		// patch objects under it on purpose.
		FieldManagers: []ssa.FieldManager{
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationApply},
			{Name: "kubectl", OperationType: metav1.ManagedFieldsOperationUpdate},
			{Name: "before-first-apply", OperationType: metav1.ManagedFieldsOperationUpdate},
		},
		// Merge keeps what other managers wrote.
		Exclusions: map[string]string{stagesetv1.SSAAnnotation: SSAMerge},
	}
	return o, nil
}
