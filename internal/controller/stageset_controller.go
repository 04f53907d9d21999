// Package controller holds the StageSet reconciler: orchestration only. Each
// phase of a run calls one domain package under internal/ (source, build,
// apply, impersonation, metrics).
package controller

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/fluxcd/pkg/runtime/events"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/impersonation"
	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/runbook"
	"github.com/stageset/stageset-controller/internal/snapshot"
	"github.com/stageset/stageset-controller/internal/source"
)

const (
	// ControllerName is the name the controller reports in events and logs,
	// and the server-side apply field manager of applied objects.
	ControllerName = "stageset-controller"

	// StatusManager is the field owner of the StageSet status.
	StatusManager = "gotk-" + ControllerName
)

// StageSetReconciler reconciles StageSet objects.
type StageSetReconciler struct {
	// Client reads StageSets and sources (cached) and writes StageSet
	// metadata and status.
	client.Client

	// APIReader reads the ConfigMaps and Secrets of substituteFrom from the
	// API server, never from a cache: a watch event for one of them must
	// find it (the manager's API reader).
	APIReader client.Reader

	// Clients builds the client every cluster write and health read of a
	// StageSet goes through (impersonation, remote clusters).
	Clients *impersonation.Factory

	// Sources resolves stage sources; Fetcher downloads their artifacts.
	Sources *source.Resolver
	Fetcher *source.Fetcher

	// Builds keeps the last build of every stage, so steady-state runs do
	// not download and build unchanged artifacts again.
	Builds *build.Cache

	// Snapshots stores what the last good rollout applied, for rollback and
	// for drift correction while a rollout is deferred or held.
	Snapshots *snapshot.Store

	// Migrations is the ledger of completed migrations, which survives the
	// loss of the StageSet's status.
	Migrations *migration.Ledger

	// Clock returns the current time for update windows; time.Now when nil.
	Clock func() time.Time

	// AllowedActionHosts are the --allowed-action-hosts globs of HTTP actions.
	AllowedActionHosts []string

	// MaxObjectsPerStage fails the build of a stage (or of a job action)
	// whose files hold more objects than this; 0 sets no limit
	// (--max-objects-per-stage).
	MaxObjectsPerStage int

	// NoCrossNamespaceRefs refuses dependsOn entries in another namespace
	// (--no-cross-namespace-refs; Sources enforces it for sources).
	NoCrossNamespaceRefs bool

	// EventRecorder emits Kubernetes Events and, when configured, forwards
	// them to notification-controller.
	EventRecorder events.Recorder

	// Metrics records the stageset_* series.
	Metrics *metrics.Recorder

	// StatusManager is the field owner of status patches.
	StatusManager string

	// DependencyRequeueInterval is how soon a StageSet waiting on a source or
	// a dependency is checked again.
	DependencyRequeueInterval time.Duration

	// Runbooks links the Ready message of an actionable reason, and its
	// Warning event, to its runbook (--runbook-base-url).
	Runbooks runbook.Links

	// Integrity keys the digest of stage inputs kept in the status
	// (status.lastAppliedInputs), so that it tells nothing about the
	// Secret values it covers.
	Integrity *integrity.Key

	// runs are the runs under way.
	runs inflight
	// warned is the drift last reported per StageSet in Warn mode.
	warned warnedDrift
	// known is the resourceVersion of each StageSet as last written.
	known knownVersions
}

// NewStageSet returns an empty StageSet, for callers that need an object of
// the kind (cache options, watches).
func NewStageSet() *stagesetv1.StageSet {
	return &stagesetv1.StageSet{}
}

// Reconcile runs one reconcile of a StageSet: teardown when it is being
// deleted, otherwise a rollout of every stage in order.
func (r *StageSetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	obj := NewStageSet()
	if err := r.readCurrent(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			// Gone by any path (also without the finalizer's teardown):
			// nothing of it is kept in memory.
			r.Metrics.Delete(req.Namespace, req.Name)
			r.Builds.Forget(buildCachePrefix(req.Namespace, req.Name))
			r.warned.forget(req.NamespacedName)
			r.known.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	// The gotk_* series of the Flux controllers, for a StageSet that still
	// exists when the reconcile ends (panics included: this runs after the
	// recovery below).
	start := time.Now()
	defer func() {
		if obj.DeletionTimestamp.IsZero() || controllerutil.ContainsFinalizer(obj, stagesetv1.StageSetFinalizer) {
			r.Metrics.RecordFlux(obj, start)
		}
	}()

	patcher := newObjectPatcher(r.Client, r.StatusManager, obj)
	patcher.wrote = func(resourceVersion string) { r.known.set(req.NamespacedName, resourceVersion) }
	// A panic is a bug of the controller, never of the StageSet: the run
	// ends Ready=False with the panic's message instead of a status stuck
	// at Reconciling (SPEC §11), and is retried like any failure.
	defer func() {
		if p := recover(); p != nil {
			result, retErr = r.reportPanic(ctx, obj, patcher, p)
		}
	}()

	if !obj.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, obj, patcher)
	}

	// The finalizer goes on first, so that nothing is applied that a
	// deletion could not tear down. The run goes on in this reconcile.
	if !controllerutil.ContainsFinalizer(obj, stagesetv1.StageSetFinalizer) {
		controllerutil.AddFinalizer(obj, stagesetv1.StageSetFinalizer)
		if err := patcher.Patch(ctx, obj); err != nil {
			return ctrl.Result{}, err
		}
	}

	// A new requestedAt token lifts the hold on a rolled back revision set;
	// a new forceAt token also lets a deferred rollout start outside its
	// windows. Each token acts once: it is recorded as handled with the
	// outcome of the run (finishRun), not by a progress patch, so a run that
	// restarts (superseded, or its records not written) acts on it again.
	var tokens handledTokens
	var requested, forced bool
	if token, ok := meta.ReconcileAnnotationValue(obj.GetAnnotations()); ok {
		requested = token != obj.Status.LastHandledReconcileAt
		tokens.reconcile = &token
	}
	if token := obj.GetAnnotations()[meta.ForceRequestAnnotation]; token != "" && token != obj.Status.LastHandledForceAt {
		forced, requested = true, true
		tokens.force = token
	}

	if obj.Spec.Suspend {
		tokens.record(obj)
		conditions.MarkFalse(obj, meta.ReadyCondition, stagesetv1.SuspendedReason, "Reconciliation is suspended")
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		obj.Status.ObservedGeneration = obj.Generation
		return ctrl.Result{}, r.patchStatus(ctx, obj, patcher)
	}

	before := readyOf(obj)
	tracked, done := r.runs.start(req.NamespacedName)
	defer done()
	run := r.newRun(obj, patcher, tracked)
	run.requested, run.forced, run.tokens = requested, forced, tokens
	err := run.execute(ctx)
	if errors.Is(err, errSuperseded) {
		return r.restartRun(ctx, run)
	}
	if ctx.Err() != nil {
		// The controller is stopping: the run was interrupted, not failed.
		// Nothing is reported; the next controller takes the StageSet up
		// where the cluster is (a running migration Job is waited on again).
		return ctrl.Result{}, nil
	}
	return r.finishRun(ctx, run, before, err)
}

// handledTokens are the request tokens a run acts on.
type handledTokens struct {
	reconcile *string
	force     string
}

// record marks the tokens handled in the status.
func (t handledTokens) record(obj *stagesetv1.StageSet) {
	if t.reconcile != nil {
		obj.Status.SetLastHandledReconcileRequest(*t.reconcile)
	}
	if t.force != "" {
		obj.Status.LastHandledForceAt = t.force
	}
}

// reportPanic turns a panic recovered from a reconcile into Ready=False
// (reason ReconciliationFailed) with the panic's value, a Warning event and
// an error log with the stack, and requeues after spec.retryInterval.
func (r *StageSetReconciler) reportPanic(ctx context.Context, obj *stagesetv1.StageSet, patcher *objectPatcher, p any) (ctrl.Result, error) {
	err := fmt.Errorf("internal error: reconcile panicked: %v", p)
	log.FromContext(ctx).Error(err, "recovered a panic", "stack", string(debug.Stack()))
	before := readyOf(obj)
	r.markNotReady(obj, stagesetv1.ReconciliationFailedReason, err.Error())
	conditions.Delete(obj, meta.ReconcilingCondition)
	obj.Status.ObservedGeneration = obj.Generation
	r.Metrics.RecordReconcile(obj.Namespace, obj.Name, stagesetv1.ReconciliationFailedReason)
	if perr := r.patchStatus(ctx, obj, patcher); perr != nil {
		return ctrl.Result{}, errors.Join(err, perr)
	}
	if after := readyOf(obj); after != before {
		r.event(obj, obj.Status.LastAttemptedRevision, after)
	}
	return ctrl.Result{RequeueAfter: obj.GetRetryInterval()}, nil
}

// buildCachePrefix is the prefix of the build cache keys of a StageSet's
// stages. The fingerprint of an entry covers every input of the build, so a
// StageSet created again under the name can reuse it.
func buildCachePrefix(namespace, name string) string {
	return namespace + "/" + name + "/"
}

func (r *StageSetReconciler) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// patchStatus writes the status with the controller's field owner.
func (r *StageSetReconciler) patchStatus(ctx context.Context, obj *stagesetv1.StageSet, patcher *objectPatcher) error {
	err := patcher.Patch(ctx, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// readyState is the part of the Ready condition whose change is news.
type readyState struct {
	status, reason, message string
}

func readyOf(obj *stagesetv1.StageSet) readyState {
	c := conditions.Get(obj, meta.ReadyCondition)
	if c == nil {
		return readyState{}
	}
	return readyState{string(c.Status), c.Reason, c.Message}
}
