package apply

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	ssaerrors "github.com/fluxcd/pkg/ssa/errors"
	"github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Diff tells what Apply would do to each object of the stage without writing
// anything: every object is compared with its live copy through a server-side
// dry-run (ssa ResourceManager.Diff). The change set has one entry per
// object, in apply order: created when the object is missing (or would be
// force-recreated), configured when it drifted, unchanged, or skipped
// (stageset.io/ssa: Ignore, or IfNotPresent on an existing object).
//
// The objects are compared with the owner labels set, as Apply sets them, so
// labels alone never count as drift after an Apply; the caller's objects are
// not modified. opts.IgnoreRules are honoured as in Apply.
//
// Objects that the cluster cannot dry-run yet because the stage itself
// defines them a home (a kind of a CRD of the stage, a Namespace of the
// stage) count as created. Any other failure is an error naming the object;
// then no change set is returned.
//
// Diff compares values only: an object whose values match but whose managed
// fields Apply would rewrite (fields last written by kubectl, see
// ssaApplyOptions) is unchanged here while Apply reports it configured.
func (m *Manager) Diff(ctx context.Context, owner Owner, objects []*unstructured.Unstructured, opts ApplyOptions) (*ssa.ChangeSet, error) {
	diffs, err := m.DiffObjects(ctx, owner, objects, opts)
	if err != nil {
		return nil, err
	}
	cs := ssa.NewChangeSet()
	for _, d := range diffs {
		cs.Add(d.Entry)
	}
	return cs, nil
}

// ObjectDiff is what Apply would do to one object.
type ObjectDiff struct {
	// Entry is the action, as in the change set of Diff.
	Entry ssa.ChangeSetEntry
	// Live and DryRun are set for a configured object only: the live object
	// and the result of the server-side dry-run, as ssa returns them
	// (managedFields removed, Secret data masked, ignored fields removed).
	Live, DryRun *unstructured.Unstructured
}

// DiffObjects is Diff with both sides of every configured object, for
// showing the change (stagesetctl diff).
func (m *Manager) DiffObjects(ctx context.Context, owner Owner, objects []*unstructured.Unstructured, opts ApplyOptions) ([]ObjectDiff, error) {
	applyOpts, err := m.ssaApplyOptions(opts)
	if err != nil {
		return nil, err
	}
	diffOpts := ssa.DiffOptions{
		Exclusions:           applyOpts.ExclusionSelector,
		IfNotPresentSelector: applyOpts.IfNotPresentSelector,
		Force:                applyOpts.Force,
		ForceSelector:        applyOpts.ForceSelector,
		DriftIgnoreRules:     applyOpts.DriftIgnoreRules,
	}

	// Copies: ssa edits the objects it diffs (it drops CRD caBundles), and
	// Diff must leave the caller's objects as they were.
	stage := make([]*unstructured.Unstructured, len(objects))
	for i, obj := range objects {
		stage[i] = obj.DeepCopy()
	}
	owner.SetLabels(stage...)
	sort.Sort(ssa.SortableUnstructureds(stage))
	defs := definitionsOf(stage)

	diffs := make([]ObjectDiff, len(stage))
	errs := make([]error, len(stage))
	var g errgroup.Group
	g.SetLimit(concurrency)
	for i, obj := range stage {
		g.Go(func() error {
			diffs[i], errs[i] = m.diffObject(ctx, obj, defs, diffOpts)
			return nil
		})
	}
	_ = g.Wait()
	if err := joinErrors(errs); err != nil {
		return nil, fmt.Errorf("diffing stage %q: %w", owner.Stage, err)
	}
	return diffs, nil
}

// diffObject returns the action Apply would take on one object.
func (m *Manager) diffObject(ctx context.Context, obj *unstructured.Unstructured, defs stageDefinitions, opts ssa.DiffOptions) (ObjectDiff, error) {
	id := utils.FmtUnstructured(obj)
	if !utils.IsKubernetesObject(obj) {
		return ObjectDiff{}, fmt.Errorf("%s: apiVersion, kind and metadata.name are required", id)
	}
	// ssa names a skipped object after its live copy, which is empty when the
	// object does not exist; the manifest names it in every case.
	if utils.AnyInMetadata(obj, opts.Exclusions) {
		return ObjectDiff{Entry: entryFor(obj, ssa.SkippedAction)}, nil
	}

	entry, live, dryRun, err := m.resources.Diff(ctx, obj, opts)
	if err != nil {
		if definedByStage(err, obj, defs) {
			return ObjectDiff{Entry: entryFor(obj, ssa.CreatedAction)}, nil
		}
		var dryRunErr *ssaerrors.DryRunErr
		if errors.As(err, &dryRunErr) {
			return ObjectDiff{}, err // it names the object already
		}
		return ObjectDiff{}, fmt.Errorf("%s: %w", id, err)
	}

	// Under force, ssa reports an object with an immutable-field change as
	// created without checking that its replacement is valid; Apply refuses
	// the stage in that case (see validateAsNew), so Diff fails the same way.
	if entry.Action == ssa.CreatedAction && (opts.Force || utils.AnyInMetadata(obj, opts.ForceSelector)) {
		if err := m.validateAsNew(ctx, obj); err != nil {
			return ObjectDiff{}, err
		}
	}
	return ObjectDiff{Entry: *entry, Live: live, DryRun: dryRun}, nil
}

// definedByStage tells whether a dry-run failed only because the object's
// kind or namespace is one the stage itself creates.
func definedByStage(err error, obj *unstructured.Unstructured, defs stageDefinitions) bool {
	if meta.IsNoMatchError(err) {
		return defs.kinds[obj.GroupVersionKind().GroupKind()]
	}
	return apierrors.IsNotFound(err) && obj.GetNamespace() != "" && defs.namespaces[obj.GetNamespace()]
}

// entryFor builds the change set entry of an object the way ssa does.
func entryFor(obj *unstructured.Unstructured, action ssa.Action) ssa.ChangeSetEntry {
	return ssa.ChangeSetEntry{
		ObjMetadata:  object.UnstructuredToObjMetadata(obj),
		GroupVersion: obj.GroupVersionKind().Version,
		Subject:      utils.FmtUnstructured(obj),
		Action:       action,
	}
}
