package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	ssautil "github.com/fluxcd/pkg/ssa/utils"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
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
		var terminating *terminatingError
		if err == nil || errors.As(err, &terminating) {
			if ferr := r.forgetMigrations(ctx, obj, deleted); ferr != nil {
				err = ferr
			}
		}
		if errors.As(err, &terminating) {
			// Not a failure: the teardown waits, and says for what.
			conditions.MarkUnknown(obj, meta.ReadyCondition, meta.ProgressingReason, "%s", err)
			conditions.MarkReconciling(obj, meta.ProgressingReason, "%s", err)
			if perr := r.patchStatus(ctx, obj, patcher); perr != nil {
				return ctrl.Result{}, perr
			}
			return ctrl.Result{RequeueAfter: terminationPoll(terminating.left, r.DependencyRequeueInterval)}, nil
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
// Delete they always are. A stage no longer in the spec follows the prune
// setting recorded in its status (status.stages[].pruneDisabled).
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
			// A stage removed from the spec mirrors the prune setting the
			// last run recorded for it.
			del = p || (!inSpec && !status.PruneDisabled)
		}
		remaining, gone, err := teardownStage(ctx, mgr, obj, status, del)
		obj.Status.Stages[i].Inventory = remaining
		if err != nil {
			return nil, fmt.Errorf("tearing down stage %q: %w", status.Name, err)
		}
		// The first stage has no stage before it to hold back.
		if del && i > 0 {
			stillThere, err := r.awaitTermination(ctx, mgr, obj, i, status)
			if err != nil {
				return deleted, err
			}
			// Objects left terminating past the timeout may stay: their
			// data is not known gone.
			gone = gone && !stillThere
		}
		if gone {
			deleted = append(deleted, status.Name)
		}
	}
	return deleted, nil
}

// terminationPoll is how soon a teardown waiting on terminating objects
// looks again: every 5 seconds, sooner when the wait ends sooner or the
// dependency requeue interval is shorter (tests), never in a tight loop.
func terminationPoll(left, dependencyRequeue time.Duration) time.Duration {
	wait := min(left, 5*time.Second)
	if dependencyRequeue > 0 {
		wait = min(wait, dependencyRequeue)
	}
	return max(wait, 100*time.Millisecond)
}

// terminatingError is a stage whose deleted objects still exist, held by
// finalizers: the stages before it are torn down once they are gone.
type terminatingError struct {
	stage   string
	objects []*unstructured.Unstructured
	// left is how long the stage's timeout still lets the teardown wait.
	left time.Duration
}

func (e *terminatingError) Error() string {
	return fmt.Sprintf("tearing down stage %q: waiting for %d objects to be deleted: %s", e.stage, len(e.objects), objectNames(e.objects))
}

// awaitTermination holds the teardown at the stage of index i while the
// objects it deleted are still terminating (finalizers an operator of an
// earlier stage may have to remove), for at most the stage's timeout from
// the latest of their deletions: a stage is torn down only when the stage
// after it is gone, as it was applied only when the stage before it was
// healthy. While it waits, the stage keeps its whole inventory (what is
// gone is found gone again, what was kept is kept again, so the migration
// records of a stage that kept objects are never forgotten), and the
// stages after it, done, leave the status. Past the timeout, a Warning
// event says what still terminates and the teardown goes on; stillThere
// then tells that objects of the stage may stay.
func (r *StageSetReconciler) awaitTermination(ctx context.Context, mgr *apply.Manager, obj *stagesetv1.StageSet, i int, status stagesetv1.StageStatus) (stillThere bool, err error) {
	if status.Inventory == nil || len(status.Inventory.Entries) == 0 {
		return false, nil
	}
	objects, err := apply.InventoryObjects(status.Inventory)
	var held []*unstructured.Unstructured
	var since time.Time
	if err == nil {
		held, since, err = mgr.Terminating(ctx, objects)
	}
	if err != nil {
		// Whatever the stage deleted stays in its inventory, to be looked
		// at again by the retry.
		obj.Status.Stages[i].Inventory = status.Inventory
		return false, fmt.Errorf("tearing down stage %q: %w", status.Name, err)
	}
	if len(held) == 0 {
		return false, nil
	}
	timeout := obj.GetTimeout()
	for _, st := range obj.Spec.Stages {
		if st.Name == status.Name {
			timeout = obj.GetStageTimeout(st)
		}
	}
	if waited := r.now().Sub(since); waited < timeout {
		obj.Status.Stages[i].Inventory = status.Inventory
		obj.Status.Stages = obj.Status.Stages[:i+1]
		return false, &terminatingError{stage: status.Name, objects: held, left: timeout - waited}
	}
	r.eventf(obj, obj.Status.LastAppliedRevision, corev1.EventTypeWarning, stagesetv1.TeardownTimeoutReason,
		"Stage %q: %d objects still terminating %s after their deletion (finalizers): tearing down the stages before it anyway; left: %s",
		status.Name, len(held), timeout, objectNames(held))
	return true, nil
}

// objectNames lists the first objects as Kind/namespace/name.
func objectNames(objects []*unstructured.Unstructured) string {
	names := make([]string, 0, len(objects))
	for _, o := range objects {
		names = append(names, ssautil.FmtUnstructured(o))
	}
	return firstNames(names)
}

// firstNames joins the first names of a list for a message, and says how
// many more there are.
func firstNames(names []string) string {
	const maxListed = 10
	if len(names) > maxListed {
		names = append(names[:maxListed:maxListed], fmt.Sprintf("and %d more", len(names)-maxListed))
	}
	return strings.Join(names, ", ")
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
	var names []string
	for _, st := range obj.Status.Stages {
		if st.Inventory == nil {
			continue
		}
		for _, e := range st.Inventory.Entries {
			names = append(names, e.ID)
		}
	}
	return firstNames(names)
}
