package controller

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/predicates"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/dependency"
)

// Field indexes on StageSets.
const (
	// sourceIndexKey indexes StageSets by every source they read, as
	// <Kind>/<namespace>/<name>.
	sourceIndexKey = ".metadata.sources"
	// dependencyIndexKey indexes StageSets by every StageSet they depend on,
	// as <namespace>/<name>.
	dependencyIndexKey = ".metadata.dependsOn"
	// configIndexKey indexes StageSets by every ConfigMap and Secret their
	// stages substitute from, as <Kind>/<namespace>/<name>.
	configIndexKey = ".metadata.substituteFrom"
)

// Options tune the controller's work queue.
type Options struct {
	// RateLimiter paces retries after errors; the controller-runtime default
	// when nil.
	RateLimiter workqueue.TypedRateLimiter[reconcile.Request]
}

// The controller's own permissions (config/rbac is generated from these
// markers; docs/security.md says why each rule is there). Objects of stages,
// actions and migration Jobs are written with the impersonated service
// account; only installs that let StageSets act with the controller's
// identity (no --default-service-account) bind cluster-admin, through the
// config/rbac-cluster-admin overlay.
//
// StageSets are read from the cache and written by patches only: the
// finalizer by a metadata patch, the status by a status patch.
// +kubebuilder:rbac:groups=stageset.io,resources=stagesets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=stageset.io,resources=stagesets/status,verbs=patch
// Sources are read from the cache.
// +kubebuilder:rbac:groups=source.toolkit.fluxcd.io,resources=gitrepositories;ocirepositories;buckets;externalartifacts,verbs=get;list;watch
// ConfigMaps and Secrets: substituteFrom values and kubeConfig Secrets are
// read directly (get); both kinds are watched as metadata (list, watch).
// Snapshot and migration ledger Secrets in StageSet namespaces, and the
// integrity key Secret in the controller's namespace, are the controller's
// own: create, update, and delete of superseded snapshot chunks.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// Impersonating a service account (system:serviceaccount:<ns>:<name>) needs
// impersonate on serviceaccounts only: the API server adds the service
// account groups itself.
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=impersonate
// Kubernetes Events (core/v1 recorder: create, then patch of a repeated event).
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// The admission webhook: its CA goes into the caBundle of its own
// ValidatingWebhookConfiguration (--webhook-config-name; a different name
// needs this rule changed), and its certificates into a Secret of the
// controller's namespace (the secrets rule above).
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;update,resourceNames=stageset-controller
// The leader election Lease, in the controller's namespace only (an
// overlay's kustomize namespace moves the Role there).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=stageset-system

// SetupWithManager registers the reconciler with the manager. A StageSet is
// reconciled when its generation changes, a reconcile is requested through
// reconcile.fluxcd.io/requestedAt, one of its sources publishes a new
// revision, a StageSet it depends on turns Ready, or a ConfigMap or Secret
// its stages substitute from is created, changed or deleted. Those are
// watched as metadata only: no Secret data is cached.
func (r *StageSetReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, NewStageSet(), sourceIndexKey, indexSources); err != nil {
		return fmt.Errorf("indexing sources: %w", err)
	}
	if err := indexer.IndexField(ctx, NewStageSet(), dependencyIndexKey, indexDependencies); err != nil {
		return fmt.Errorf("indexing dependencies: %w", err)
	}
	if err := indexer.IndexField(ctx, NewStageSet(), configIndexKey, indexConfigs); err != nil {
		return fmt.Errorf("indexing substituteFrom: %w", err)
	}

	b := ctrl.NewControllerManagedBy(mgr).
		For(NewStageSet(), builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{}, forceRequested{}),
		)).
		Watches(NewStageSet(), handler.EnqueueRequestsFromMapFunc(r.dependents),
			builder.WithPredicates(becameReady{})).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.substitutingFrom("ConfigMap")),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.substitutingFrom("Secret")),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{})).
		WithOptions(controller.Options{RateLimiter: opts.RateLimiter})
	for kind, src := range map[string]client.Object{
		stagesetv1.GitRepositoryKind: &sourcev1.GitRepository{}, stagesetv1.OCIRepositoryKind: &sourcev1.OCIRepository{},
		stagesetv1.BucketKind: &sourcev1.Bucket{}, stagesetv1.ExternalArtifactKind: &sourcev1.ExternalArtifact{},
	} {
		b = b.Watches(src, handler.EnqueueRequestsFromMapFunc(r.readersOf),
			builder.WithPredicates(revisionChanged{})).
			Watches(src, r.supersedingRuns(kind), builder.WithPredicates(revisionChanged{}))
	}
	return b.Complete(r)
}

func indexSources(o client.Object) []string {
	var keys []string
	for _, ref := range o.(*stagesetv1.StageSet).GetSourceRefs() {
		keys = append(keys, ref.String())
	}
	return keys
}

func indexDependencies(o client.Object) []string {
	obj := o.(*stagesetv1.StageSet)
	keys := make([]string, 0, len(obj.Spec.DependsOn))
	for _, ref := range obj.Spec.DependsOn {
		keys = append(keys, dependency.Key(obj, ref).String())
	}
	return keys
}

func indexConfigs(o client.Object) []string {
	obj := o.(*stagesetv1.StageSet)
	seen := map[string]bool{}
	var keys []string
	for _, stage := range obj.Spec.Stages {
		if stage.PostBuild == nil {
			continue
		}
		for _, ref := range stage.PostBuild.SubstituteFrom {
			key := configKey(ref.Kind, obj.Namespace, ref.Name)
			if !seen[key] {
				seen[key] = true
				keys = append(keys, key)
			}
		}
	}
	return keys
}

func configKey(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

// substitutingFrom maps a ConfigMap or Secret (kind) to the StageSets whose
// stages substitute from it. Their next run rolls out a changed value.
func (r *StageSetReconciler) substitutingFrom(kind string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return r.requestsFor(ctx, configIndexKey, configKey(kind, o.GetNamespace(), o.GetName()))
	}
}

// readersOf maps a source to the StageSets that read it.
func (r *StageSetReconciler) readersOf(ctx context.Context, src client.Object) []reconcile.Request {
	kind := src.GetObjectKind().GroupVersionKind().Kind
	if kind == "" {
		gvks, _, err := r.Scheme().ObjectKinds(src)
		if err != nil || len(gvks) == 0 {
			return nil
		}
		kind = gvks[0].Kind
	}
	return r.requestsFor(ctx, sourceIndexKey, sourceKey(kind, src))
}

// sourceKey is the index key of a source: <Kind>/<namespace>/<name>.
func sourceKey(kind string, src client.Object) string {
	return kind + "/" + src.GetNamespace() + "/" + src.GetName()
}

// supersedingRuns is the handler that tells the runs under way of a new
// revision of their source, so that a run pinned to an older one stops
// waiting. It is not part of readersOf: a map function is called for the
// old object of an update as well as the new one, and must only map.
func (r *StageSetReconciler) supersedingRuns(kind string) handler.EventHandler {
	supersede := func(ctx context.Context, src client.Object) {
		revision := artifactRevision(src)
		if revision == "" {
			return
		}
		key := sourceKey(kind, src)
		for _, req := range r.requestsFor(ctx, sourceIndexKey, key) {
			r.runs.supersede(req.NamespacedName, key, revision)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			supersede(ctx, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			supersede(ctx, e.ObjectNew)
		},
	}
}

// dependents maps a StageSet to the StageSets that depend on it.
func (r *StageSetReconciler) dependents(ctx context.Context, o client.Object) []reconcile.Request {
	return r.requestsFor(ctx, dependencyIndexKey, client.ObjectKeyFromObject(o).String())
}

func (r *StageSetReconciler) requestsFor(ctx context.Context, index, key string) []reconcile.Request {
	var list stagesetv1.StageSetList
	if err := r.List(ctx, &list, client.MatchingFields{index: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing StageSets", "index", index, "key", key)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}

// revisionChanged passes source updates whose artifact revision changed:
// source-controller updates status often, a rollout is due only for a new
// revision.
type revisionChanged struct{ predicate.Funcs }

func (revisionChanged) Create(event.CreateEvent) bool { return true }
func (revisionChanged) Delete(event.DeleteEvent) bool { return false }
func (revisionChanged) Update(e event.UpdateEvent) bool {
	return artifactRevision(e.ObjectOld) != artifactRevision(e.ObjectNew)
}

func artifactRevision(o client.Object) string {
	if src, ok := o.(sourcev1.Source); ok && src.GetArtifact() != nil {
		return src.GetArtifact().Revision
	}
	return ""
}

// forceRequested passes StageSet updates that stamp a new
// reconcile.fluxcd.io/forceAt token (alone, or with requestedAt as
// `flux reconcile --force` does).
type forceRequested struct{ predicate.Funcs }

func (forceRequested) Create(event.CreateEvent) bool   { return false }
func (forceRequested) Delete(event.DeleteEvent) bool   { return false }
func (forceRequested) Generic(event.GenericEvent) bool { return false }
func (forceRequested) Update(e event.UpdateEvent) bool {
	token := e.ObjectNew.GetAnnotations()[meta.ForceRequestAnnotation]
	return token != "" && token != e.ObjectOld.GetAnnotations()[meta.ForceRequestAnnotation]
}

// becameReady passes StageSet updates that turn Ready=True.
type becameReady struct{ predicate.Funcs }

func (becameReady) Create(event.CreateEvent) bool   { return false }
func (becameReady) Delete(event.DeleteEvent) bool   { return false }
func (becameReady) Generic(event.GenericEvent) bool { return false }
func (becameReady) Update(e event.UpdateEvent) bool {
	oldObj, okOld := e.ObjectOld.(*stagesetv1.StageSet)
	newObj, okNew := e.ObjectNew.(*stagesetv1.StageSet)
	return okOld && okNew && !conditions.IsReady(oldObj) && conditions.IsReady(newObj)
}
