// Package controller holds the StageSet reconciler: orchestration only. Each
// phase of a run calls one domain package under internal/.
package controller

import (
	"context"

	"github.com/fluxcd/pkg/runtime/patch"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

const (
	// ControllerName is the name the controller reports in events, logs and
	// as the server-side apply field manager of applied objects.
	ControllerName = "stageset-controller"

	// StatusManager is the field owner of the StageSet status.
	StatusManager = "gotk-" + ControllerName
)

// StageSetReconciler reconciles StageSet objects.
//
// This is the foundation's reconciler: it records the generation it observed
// and nothing else yet. Delivery (sources, build, apply, health) comes with
// its own change.
type StageSetReconciler struct {
	// Client reads and writes StageSets (cached reads).
	client.Client

	// StatusManager is the field owner of status patches.
	StatusManager string
}

// NewStageSet returns an empty StageSet, for callers that need an object of
// the kind (cache options, watches).
func NewStageSet() *stagesetv1.StageSet {
	return &stagesetv1.StageSet{}
}

// Reconcile records the observed generation of a StageSet.
func (r *StageSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := NewStageSet()
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}

	patcher := patch.NewSerialPatcher(obj, r.Client)
	defer func() {
		obj.Status.ObservedGeneration = obj.Generation
		if err := patcher.Patch(ctx, obj, patch.WithFieldOwner(r.StatusManager)); err != nil && !apierrors.IsNotFound(err) {
			retErr = err
		}
	}()
	return ctrl.Result{}, nil
}
