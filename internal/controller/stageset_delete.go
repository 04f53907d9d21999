package controller

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
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
		if err := r.teardown(ctx, obj); err != nil {
			conditions.MarkFalse(obj, meta.ReadyCondition, stagesetv1.StageFailedReason, "%s", err.Error())
			if perr := r.patchStatus(ctx, obj, patcher); perr != nil {
				err = errors.Join(err, perr)
			}
			log.FromContext(ctx).Error(err, "teardown failed")
			return ctrl.Result{RequeueAfter: obj.GetRetryInterval()}, nil
		}
	}

	controllerutil.RemoveFinalizer(obj, stagesetv1.StageSetFinalizer)
	r.Metrics.Delete(obj.Namespace, obj.Name)
	r.Builds.Forget(string(obj.UID) + "/")
	r.appliedInputs.forget(obj.UID)
	r.attemptedInputs.forget(obj.UID)
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
func (r *StageSetReconciler) teardown(ctx context.Context, obj *stagesetv1.StageSet) error {
	kube, err := r.Clients.ClientFor(ctx, obj)
	if err != nil {
		return fmt.Errorf("building the client: %w", err)
	}
	mgr := apply.NewManager(kube, ControllerName)
	prune := map[string]bool{}
	for _, st := range obj.Spec.Stages {
		prune[st.Name] = st.IsPruneEnabled()
	}
	for i := len(obj.Status.Stages) - 1; i >= 0; i-- {
		status := obj.Status.Stages[i]
		del := obj.GetDeletionPolicy() == stagesetv1.DeletionPolicyDelete
		if p, inSpec := prune[status.Name]; !del {
			del = !inSpec || p
		}
		remaining, err := teardownStage(ctx, mgr, obj, status, del)
		obj.Status.Stages[i].Inventory = remaining
		if err != nil {
			return fmt.Errorf("tearing down stage %q: %w", status.Name, err)
		}
	}
	return nil
}
