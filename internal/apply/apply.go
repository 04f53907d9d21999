package apply

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
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
	// pass is skipped, as they passed it then. Each object is still
	// dry-run before it is written, so a refused object is not written;
	// objects already started are corrected, no other is started, and
	// later groups are not applied.
	Reassert bool
	// Validation is the result of Validate on the same objects, run ahead
	// (while the stage before was being applied). It is used when it covers
	// the objects as Apply sends them; otherwise they are validated again.
	Validation *Validation
	// Live, when set, receives the objects as the API server returned them,
	// for Wait (WaitOptions.Live).
	Live *LiveObjects
}

// definitionsWaitTimeout and definitionsWaitInterval bound the wait for a
// stage's CRDs, Namespaces, ClusterRoles and *Class objects before the
// objects that need them are applied: ssa's defaults for the timeout, a
// shorter poll than its 2 s, as a CRD is usually established in well under
// a second.
const (
	definitionsWaitTimeout  = time.Minute
	definitionsWaitInterval = 500 * time.Millisecond
)

// Apply sets the owner labels on every object (in place, so the caller's
// copies match what was applied), then applies the stage group by group as
// ssa ApplyAllStaged orders it: CRDs, ClusterRoles and Namespaces first,
// then *Class kinds, then the rest, waiting for each of the first two
// groups to be ready. Within a group, objects are applied by ssa one each,
// four at a time (ApplyAll writes its objects one after the other). Objects
// are written only when they drifted, so an unchanged object keeps its
// resourceVersion.
//
// Before anything is written, every object is validated by a server-side
// dry-run (see validate); a stage with one invalid object applies nothing and
// the error names every bad object. ssa's own read and dry-run of an object
// are then answered from that pass where they can be (see stageClient): a
// new object costs a dry-run and a write. Re-asserted objects
// (opts.Reassert) are not validated again: a steady-state run costs a read
// and a dry-run per object.
//
// It returns the change set: per object created, configured, unchanged or
// skipped (stageset.io/ssa: Ignore, or IfNotPresent on an existing object).
// An object whose only differences are fields of opts.IgnoreRules is
// unchanged and not written. When the apply fails half-way, the returned
// change set holds what was applied before the failure, so the caller can
// record it for pruning; no object is started after the first failure.
func (m *Manager) Apply(ctx context.Context, owner Owner, objects []*unstructured.Unstructured, opts ApplyOptions) (*ssa.ChangeSet, error) {
	ssaOpts, err := m.ssaApplyOptions(opts)
	if err != nil {
		return nil, err
	}
	prepare(owner, objects)

	checked := opts.Validation
	switch {
	case opts.Reassert:
		checked = nil
	case checked == nil || !checked.covers(objects):
		if checked, err = m.validate(ctx, objects, ssaOpts); err != nil {
			return nil, err
		}
	}

	c := &stageClient{Client: m.client, checked: checked, live: opts.Live}
	resources := ssa.NewResourceManager(c, newPoller(c), ssa.Owner{Field: m.fieldManager, Group: stagesetv1.GroupName})
	cs := ssa.NewChangeSet()
	groups := stageGroups(objects)
	for i, group := range groups {
		if checked != nil {
			if err := m.validateDeferred(ctx, group, checked, ssaOpts); err != nil {
				return cs, fmt.Errorf("applying stage %q: %w", owner.Stage, err)
			}
		}
		entries, err := applyGroup(ctx, resources, group.objects, ssaOpts)
		cs.Append(entries)
		if err != nil {
			return cs, fmt.Errorf("applying stage %q: %w", owner.Stage, err)
		}
		if group.definitions && i < len(groups)-1 {
			if err := m.waitForDefinitions(ctx, owner, entries, opts.Live); err != nil {
				return cs, fmt.Errorf("applying stage %q: %w", owner.Stage, err)
			}
		}
	}
	return cs, nil
}

// Validate runs Apply's validation pass ahead of Apply, for
// ApplyOptions.Validation. It sets the owner labels on the objects, as
// Apply does.
func (m *Manager) Validate(ctx context.Context, owner Owner, objects []*unstructured.Unstructured, opts ApplyOptions) (*Validation, error) {
	ssaOpts, err := m.ssaApplyOptions(opts)
	if err != nil {
		return nil, err
	}
	prepare(owner, objects)
	return m.validate(ctx, objects, ssaOpts)
}

// prepare makes the objects what Apply sends: with the owner labels, and
// without the caBundle of CRD conversion webhooks, which whoever serves the
// webhook injects (ssa ApplyAll drops it too).
func prepare(owner Owner, objects []*unstructured.Unstructured) {
	owner.SetLabels(objects...)
	for _, obj := range objects {
		utils.RemoveCABundleFromCRD(obj)
	}
}

// group is one of the groups of ssa ApplyAllStaged.
type group struct {
	objects []*unstructured.Unstructured
	// definitions are CRDs, ClusterRoles, Namespaces or *Class objects,
	// which the objects of later groups may need.
	definitions bool
}

// stageGroups splits a stage like ssa ApplyAllStaged, each group sorted like
// ssa ApplyAll sorts it; empty groups are left out. The caller's slice keeps
// its order.
func stageGroups(objects []*unstructured.Unstructured) []group {
	var defs, classes, rest []*unstructured.Unstructured
	for _, obj := range objects {
		switch {
		case utils.IsClusterDefinition(obj):
			defs = append(defs, obj)
		case utils.IsClassDefinition(obj):
			classes = append(classes, obj)
		default:
			rest = append(rest, obj)
		}
	}
	var groups []group
	for i, objs := range [][]*unstructured.Unstructured{defs, classes, rest} {
		if len(objs) == 0 {
			continue
		}
		sort.Sort(ssa.SortableUnstructureds(objs))
		groups = append(groups, group{objects: objs, definitions: i < 2})
	}
	return groups
}

// validateDeferred dry-runs the objects of a group that the validation pass
// let through (a kind or a namespace of the stage), now that the groups
// before it are applied: a bad one stops the stage before its group writes
// anything.
func (m *Manager) validateDeferred(ctx context.Context, g group, checked *Validation, opts ssa.ApplyOptions) error {
	var deferred []*unstructured.Unstructured
	for _, obj := range g.objects {
		if checked.isDeferred(obj) {
			deferred = append(deferred, obj)
		}
	}
	if len(deferred) == 0 {
		return nil
	}
	now, err := m.validate(ctx, deferred, opts)
	if err != nil {
		return err
	}
	checked.absorb(now)
	return nil
}

// applyGroup applies the objects of a group with ssa, one object per
// ApplyAll call and concurrency calls at a time: ApplyAll would write its
// objects one after the other, and the validation pass already gave the
// all-or-nothing guarantee ApplyAll's own dry-run pass gives. After a
// failure no further object is started. Entries keep the group's order.
func applyGroup(ctx context.Context, resources *ssa.ResourceManager, objects []*unstructured.Unstructured, opts ssa.ApplyOptions) ([]ssa.ChangeSetEntry, error) {
	entries := make([]*ssa.ChangeSetEntry, len(objects))
	errs := make([]error, len(objects))
	var failed atomic.Bool
	var g errgroup.Group
	g.SetLimit(concurrency)
	for i, obj := range objects {
		g.Go(func() error {
			if failed.Load() {
				return nil
			}
			cs, err := resources.ApplyAll(ctx, []*unstructured.Unstructured{obj}, opts)
			if err != nil {
				errs[i] = err
				failed.Store(true)
				return nil
			}
			entries[i] = &cs.Entries[0]
			return nil
		})
	}
	_ = g.Wait()
	var out []ssa.ChangeSetEntry
	for _, e := range entries {
		if e != nil {
			out = append(out, *e)
		}
	}
	return out, joinErrors(errs)
}

// waitForDefinitions waits until the definitions just applied are ready
// (CRDs established...), as ssa ApplyAllStaged does before the next group.
func (m *Manager) waitForDefinitions(ctx context.Context, owner Owner, entries []ssa.ChangeSetEntry, live *LiveObjects) error {
	var set object.ObjMetadataSet
	for _, e := range entries {
		if e.Action != ssa.SkippedAction {
			set = append(set, e.ObjMetadata)
		}
	}
	return m.Wait(ctx, set, WaitOptions{Objects: true, Live: live, Selector: owner.Labels(),
		Interval: definitionsWaitInterval, Timeout: definitionsWaitTimeout})
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
