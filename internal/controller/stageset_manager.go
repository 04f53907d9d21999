package controller

import (
	"context"

	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/fluxcd/pkg/runtime/predicates"
)

// Options tune the controller's work queue.
type Options struct {
	// RateLimiter paces retries after errors; the controller-runtime default
	// when nil.
	RateLimiter workqueue.TypedRateLimiter[reconcile.Request]
}

// The controller's own permissions. Objects of stages are applied with the
// impersonated service account, or with the controller's identity when none
// is set; config/rbac binds cluster-admin for the latter, as Flux does.
// +kubebuilder:rbac:groups=stageset.io,resources=stagesets,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=stageset.io,resources=stagesets/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=stageset.io,resources=stagesets/finalizers,verbs=update
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=gitrepositories;ocirepositories;buckets;externalartifacts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps;secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=impersonate
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// SetupWithManager registers the reconciler with the manager. A StageSet is
// reconciled when its generation changes or a reconcile is requested through
// the reconcile.fluxcd.io/requestedAt annotation.
func (r *StageSetReconciler) SetupWithManager(_ context.Context, mgr ctrl.Manager, opts Options) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(NewStageSet(), builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{}),
		)).
		WithOptions(controller.Options{RateLimiter: opts.RateLimiter}).
		Complete(r)
}
