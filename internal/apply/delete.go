package apply

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/fluxcd/pkg/ssa"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Delete removes objects of a stage, for prune and teardown. Only live
// objects whose labels still say they belong to owner (StageSet name,
// namespace and stage all match) are deleted: an object that moved to another
// stage or StageSet is left alone. Objects annotated stageset.io/prune:
// disabled are kept. Objects already gone, or of a kind the cluster no longer
// serves, count as deleted.
//
// The change set has one entry per object: deleted, or skipped when it was
// kept. failed lists the objects whose deletion failed, so the caller keeps
// them in the inventory and retries; err joins their errors. Deletion is
// background propagation, in reverse apply order (custom resources before
// their CRDs, namespaced objects before their Namespace).
func (m *Manager) Delete(ctx context.Context, owner Owner, objects []*unstructured.Unstructured) (deleted *ssa.ChangeSet, failed []*unstructured.Unstructured, err error) {
	opts := deleteOptions(owner)
	ordered := append([]*unstructured.Unstructured(nil), objects...)
	sort.Sort(sort.Reverse(ssa.SortableUnstructureds(ordered)))

	deleted = ssa.NewChangeSet()
	var errs []error
	for _, obj := range ordered {
		entry, err := m.resources.Delete(ctx, obj, opts)
		switch {
		case err == nil:
			deleted.Add(*entry)
		case meta.IsNoMatchError(err), apierrors.IsNotFound(err), apierrors.IsConflict(err):
			// Deleted: the kind is gone (its CRD was deleted) and its
			// objects with it; or the object went between ssa's read and
			// its delete (a finalizer removed); or it is being deleted
			// already: ssa sets no preconditions, so a conflict can only
			// say that (the Namespace registry has answered a second delete
			// so while the Namespace removes its content; kube-apiserver
			// v1.37 answers 200).
			deleted.Add(entryFor(obj, ssa.DeletedAction))
		default:
			failed = append(failed, obj)
			errs = append(errs, err)
		}
	}
	if err := joinErrors(errs); err != nil {
		return deleted, failed, fmt.Errorf("deleting %d of %d objects failed: %w", len(failed), len(objects), err)
	}
	return deleted, nil, nil
}

// deleteOptions select what Delete deletes: objects labelled as owner's and
// not annotated stageset.io/prune: disabled.
func deleteOptions(owner Owner) ssa.DeleteOptions {
	return ssa.DeleteOptions{
		PropagationPolicy: metav1.DeletePropagationBackground,
		Inclusions:        owner.Labels(),
		Exclusions:        map[string]string{stagesetv1.PruneAnnotation: stagesetv1.DisabledValue},
	}
}

// Terminating returns the objects that still exist with a deletion
// timestamp (finalizers hold them), and the latest of their timestamps.
// Objects gone, of a kind the cluster no longer serves, or not being
// deleted (kept, or created again) are not listed.
func (m *Manager) Terminating(ctx context.Context, objects []*unstructured.Unstructured) ([]*unstructured.Unstructured, time.Time, error) {
	var held []*unstructured.Unstructured
	var since time.Time
	for _, obj := range objects {
		live, err := m.live(ctx, obj)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("reading %s: %w", ssautil.FmtUnstructured(obj), err)
		}
		if live == nil {
			continue
		}
		deleted := live.GetDeletionTimestamp()
		if deleted == nil {
			continue
		}
		held = append(held, obj)
		if deleted.Time.After(since) {
			since = deleted.Time
		}
	}
	return held, since, nil
}

// live reads obj as it is in the cluster; nil when it is gone, or its kind
// no longer served.
func (m *Manager) live(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(obj.GroupVersionKind())
	err := m.client.Get(ctx, client.ObjectKeyFromObject(obj), live)
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return live, nil
}
