package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/integrity"
)

// finalize tears down the applied objects of a StageSet being deleted, in
// reverse stage order, per spec.deletionPolicy, then removes the finalizer.
// Objects whose deletion fails stay in the inventory and the teardown is
// retried.
func (r *StageSetReconciler) finalize(ctx context.Context, obj *stagesetv1.StageSet, patcher *objectPatcher) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, stagesetv1.StageSetFinalizer) {
		return ctrl.Result{}, nil
	}

	// A suspended StageSet is left alone, its objects too, as in Flux.
	if !obj.Spec.Suspend && obj.GetDeletionPolicy() != stagesetv1.DeletionPolicyOrphan {
		deleted, err := r.teardown(ctx, obj)
		if err == nil {
			err = r.forgetMigrations(ctx, obj, deleted)
		}
		if err != nil {
			wait, retry := teardownRetry(obj, err, r.now())
			if !retry {
				// The identity is gone for good (namespace deletion removes the
				// service account, its RBAC and the kubeConfig Secret in any
				// order): the objects stay, and the deletion is not held
				// forever, as kustomize-controller does.
				log.FromContext(ctx).Error(err, "teardown abandoned: the StageSet's identity is gone")
				r.eventf(obj, obj.Status.LastAppliedRevision, corev1.EventTypeWarning, stagesetv1.TeardownAbandonedReason,
					"Teardown abandoned, the objects stay in the cluster: %s; left: %s", err, leftObjects(obj))
			} else {
				r.markNotReady(obj, stagesetv1.StageFailedReason, err.Error())
				if perr := r.patchStatus(ctx, obj, patcher); perr != nil {
					err = errors.Join(err, perr)
				}
				log.FromContext(ctx).Error(err, "teardown failed")
				return ctrl.Result{RequeueAfter: wait}, nil
			}
		}
	}

	controllerutil.RemoveFinalizer(obj, stagesetv1.StageSetFinalizer)
	r.Metrics.Delete(obj.Namespace, obj.Name)
	r.Builds.Forget(buildCachePrefix(obj.Namespace, obj.Name))
	r.warned.forget(types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name})
	// Without finalizers the object is gone once patched.
	if err := patcher.Patch(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

// teardown deletes the inventory of every stage in reverse order. With
// MirrorPrune a stage's objects are deleted only when the stage prunes; with
// Delete they always are. A stage no longer in the spec follows its last
// known prune setting, which is the default (true).
//
// It returns the stages whose objects it deleted: the migration ledger
// forgets them, since their data is gone.
func (r *StageSetReconciler) teardown(ctx context.Context, obj *stagesetv1.StageSet) ([]string, error) {
	kube, err := r.Clients.ClientFor(ctx, obj)
	if err != nil {
		return nil, &identityError{fmt.Errorf("building the client: %w", err)}
	}
	mgr := apply.NewManager(kube, ControllerName)
	var deleted []string
	prune := map[string]bool{}
	for _, st := range obj.Spec.Stages {
		prune[st.Name] = st.IsPruneEnabled()
	}
	for i := len(obj.Status.Stages) - 1; i >= 0; i-- {
		status := obj.Status.Stages[i]
		del := obj.GetDeletionPolicy() == stagesetv1.DeletionPolicyDelete
		if p, inSpec := prune[status.Name]; !del {
			// A stage removed from the spec mirrors the prune setting it
			// was last applied with.
			del = p || (!inSpec && !status.PruneDisabled)
		}
		remaining, gone, err := teardownStage(ctx, mgr, obj, status, del)
		obj.Status.Stages[i].Inventory = remaining
		if err != nil {
			return nil, fmt.Errorf("tearing down stage %q: %w", status.Name, err)
		}
		if gone {
			deleted = append(deleted, status.Name)
		}
	}
	return deleted, nil
}

// forgetMigrations removes the ledger records of the stages whose objects
// the teardown deleted. A ledger that fails verification is not the
// controller's to edit, and must not hold the deletion: it is logged and
// left.
func (r *StageSetReconciler) forgetMigrations(ctx context.Context, obj *stagesetv1.StageSet, stages []string) error {
	err := r.Migrations.Forget(ctx, obj, stages)
	if errors.Is(err, integrity.ErrUnverified) {
		log.FromContext(ctx).Error(err, "the migration ledger is left as it is")
		return nil
	}
	return err
}

// teardownGiveUpAfter bounds how long a deletion retries a teardown that
// fails because the StageSet's identity is gone: three retry intervals, at
// most this long.
const teardownGiveUpAfter = 2 * time.Minute

// identityError is a teardown failure of the client itself (its kubeConfig
// Secret is gone or unusable), not of a deletion.
type identityError struct{ err error }

func (e *identityError) Error() string { return e.err.Error() }
func (e *identityError) Unwrap() error { return e.err }

// teardownRetry tells whether a failed teardown is tried again, and when.
// Only a failure of the identity (no client, or the API server refusing it:
// Forbidden, Unauthorized) ends the retries, once it has lasted the bound
// since the deletion was requested; any other failure is retried for ever,
// since giving up would leave objects the StageSet owns.
func teardownRetry(obj *stagesetv1.StageSet, err error, now time.Time) (time.Duration, bool) {
	var identity *identityError
	gone := errors.As(err, &identity) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
	if !gone {
		return obj.GetRetryInterval(), true
	}
	left := obj.DeletionTimestamp.Add(min(3*obj.GetRetryInterval(), teardownGiveUpAfter)).Sub(now)
	if left <= 0 {
		return 0, false
	}
	return min(obj.GetRetryInterval(), left), true
}

// leftObjects names the objects still in the inventories of a StageSet, the
// first maxListed of them.
func leftObjects(obj *stagesetv1.StageSet) string {
	const maxListed = 10
	var names []string
	total := 0
	for _, st := range obj.Status.Stages {
		if st.Inventory == nil {
			continue
		}
		for _, e := range st.Inventory.Entries {
			total++
			if len(names) < maxListed {
				names = append(names, e.ID)
			}
		}
	}
	if total > len(names) {
		names = append(names, fmt.Sprintf("and %d more", total-len(names)))
	}
	return strings.Join(names, ", ")
}
