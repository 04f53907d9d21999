package v1

import (
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// StageSetKind is the kind name of the StageSet type.
	StageSetKind = "StageSet"

	// StageSetFinalizer is set on every StageSet so that its applied objects
	// are torn down (per deletionPolicy) before the StageSet goes away.
	StageSetFinalizer = "finalizers.stageset.io"

	// MaxStages is the largest number of stages a StageSet may declare.
	MaxStages = 50
)

// StageSetSpec is the desired state of a StageSet: an ordered list of stages,
// each built from a Flux source artifact and applied only when the previous
// stage is healthy.
// +kubebuilder:validation:XValidation:rule="has(self.sourceRef) || self.stages.all(s, has(s.sourceRef))",message="spec.sourceRef is required unless every stage sets its own sourceRef"
type StageSetSpec struct {
	// Interval is the cadence of the full reconcile: every interval the
	// controller re-asserts the desired state of all stages.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="interval must be greater than zero"
	// +required
	Interval metav1.Duration `json:"interval"`

	// RetryInterval is the cadence of reconciles after a failure.
	// Defaults to spec.interval.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="retryInterval must be greater than zero"
	// +optional
	RetryInterval *metav1.Duration `json:"retryInterval,omitempty"`

	// Timeout is the default per-stage budget for migrations, apply and
	// health checks. Defaults to 5m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be greater than zero"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// DriftDetectionInterval is a faster, cheaper re-assertion cadence. When
	// set and shorter than spec.interval, a successful reconcile requeues
	// after it instead.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="driftDetectionInterval must be greater than zero"
	// +optional
	DriftDetectionInterval *metav1.Duration `json:"driftDetectionInterval,omitempty"`

	// Suspend stops all reconciliation of this StageSet. Objects already
	// applied stay as they are.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// SourceRef is the default source of every stage that has none of its
	// own.
	// +optional
	SourceRef *SourceReference `json:"sourceRef,omitempty"`

	// DependsOn lists StageSets that must be Ready, at their observed
	// generation, before this one reconciles. An entry without a namespace
	// names a StageSet of this one's namespace. Its readyExpr, a CEL
	// expression over self (this StageSet) and dep (the dependency),
	// replaces the built-in readiness check, as in Flux Kustomizations.
	// +kubebuilder:validation:MaxItems=100
	// +optional
	DependsOn []meta.DependencyReference `json:"dependsOn,omitempty"`

	// ServiceAccountName is the name of the service account, in the
	// StageSet's namespace, impersonated for every cluster write and health
	// read: apply, prune, health checks, actions and migrations. Defaults to
	// the controller's --default-service-account.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// KubeConfig applies the stages to a remote cluster instead of the one
	// the controller runs in. Only secretRef is supported: a Secret in the
	// StageSet's namespace holding a kubeconfig under the key secretRef.key,
	// "value" when unset. A configMapRef is refused (InvalidSpec).
	// +optional
	KubeConfig *meta.KubeConfigReference `json:"kubeConfig,omitempty"`

	// TargetNamespace is the default namespace of the namespaced objects of
	// every stage.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// DeletionPolicy decides what happens to the applied objects when the
	// StageSet is deleted: MirrorPrune deletes the objects of stages with
	// prune enabled, Delete deletes all of them, Orphan leaves all of them.
	// +kubebuilder:validation:Enum=MirrorPrune;Delete;Orphan
	// +kubebuilder:default=MirrorPrune
	// +optional
	DeletionPolicy string `json:"deletionPolicy,omitempty"`

	// DriftDetection configures how changes made to the applied objects
	// outside of the controller are handled. Defaults to mode Enabled, with
	// no ignore rules.
	// +optional
	DriftDetection *DriftDetection `json:"driftDetection,omitempty"`

	// UpdateWindows gate new rollouts in time. Updates are allowed when no
	// Deny window is open and, if any Allow window is declared, one is open.
	// No windows means always open.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	UpdateWindows []UpdateWindow `json:"updateWindows,omitempty"`

	// RollbackOnFailure re-applies the last good snapshot to the stages a
	// failed rollout changed.
	// +optional
	RollbackOnFailure bool `json:"rollbackOnFailure,omitempty"`

	// Stages are rolled out in order; a stage starts only when the previous
	// one is healthy. Names must be unique.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(t, t.name == s.name))",message="stage names must be unique"
	// +required
	Stages []Stage `json:"stages"`
}

// SourceReference points at a Flux source object whose artifact a stage is
// built from.
type SourceReference struct {
	// APIVersion of the source.
	// +kubebuilder:validation:Enum=source.toolkit.fluxcd.io/v1
	// +kubebuilder:default=source.toolkit.fluxcd.io/v1
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`

	// Kind of the source.
	// +kubebuilder:validation:Enum=GitRepository;OCIRepository;Bucket;ExternalArtifact
	// +required
	Kind string `json:"kind"`

	// Name of the source.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Namespace of the source. Defaults to the StageSet's namespace.
	// References to other namespaces are refused when the controller runs
	// with --no-cross-namespace-refs.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Stage is one step of a rollout: the manifests at a path of a source
// artifact, built with kustomize and applied with server-side apply.
type Stage struct {
	// Name identifies the stage: a DNS-1123 label, unique in the StageSet.
	// It keys the stage's inventory, its status and its metrics, and is set
	// as the stageset.io/stage label on every object the stage applies.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	// +required
	Name string `json:"name"`

	// SourceRef overrides spec.sourceRef for this stage.
	// +optional
	SourceRef *SourceReference `json:"sourceRef,omitempty"`

	// Path is the directory inside the artifact that holds the stage's
	// manifests. It must be relative and must not contain "..".
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative to the artifact root"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..'"
	// +kubebuilder:default="./"
	// +optional
	Path string `json:"path,omitempty"`

	// TargetNamespace overrides spec.targetNamespace for this stage.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +optional
	TargetNamespace string `json:"targetNamespace,omitempty"`

	// Prune deletes objects that left the stage: only those that still carry
	// the stage's ownership labels (stageset.io/name, stageset.io/namespace
	// and stageset.io/stage, with this stage's values) and are not annotated
	// stageset.io/prune: disabled. Defaults to true.
	// +kubebuilder:default=true
	// +optional
	Prune *bool `json:"prune,omitempty"`

	// Force recreates objects whose immutable fields changed.
	// +optional
	Force bool `json:"force,omitempty"`

	// Wait health-checks every applied object (kstatus) before the stage
	// counts as Ready. Defaults to true.
	// +kubebuilder:default=true
	// +optional
	Wait *bool `json:"wait,omitempty"`

	// HealthChecks are objects outside the stage that must be healthy too
	// before the stage counts as Ready.
	// +kubebuilder:validation:MaxItems=100
	// +optional
	HealthChecks []meta.NamespacedObjectKindReference `json:"healthChecks,omitempty"`

	// HealthCheckExprs judge the health of kinds kstatus cannot, with CEL
	// expressions over the object, as in Flux Kustomizations: an entry names
	// the apiVersion and kind it judges; current holds once the object is
	// healthy, failed when it has failed, inProgress while it is on its way.
	// +kubebuilder:validation:MaxItems=100
	// +optional
	HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs,omitempty"`

	// Timeout overrides spec.timeout for this stage.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be greater than zero"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Patches are strategic-merge or JSON6902 patches applied to the built
	// manifests, as in Flux Kustomizations.
	// +optional
	Patches []kustomize.Patch `json:"patches,omitempty"`

	// PostBuild substitutes ${var} references in the built manifests.
	// +optional
	PostBuild *PostBuild `json:"postBuild,omitempty"`

	// Actions run around the stage: before apply, after health, and when
	// the stage fails.
	// +optional
	Actions *StageActions `json:"actions,omitempty"`
}

// PostBuild describes the Flux-style variable substitution applied to a
// stage's manifests after the kustomize build.
type PostBuild struct {
	// Substitute holds a map of key/value pairs; ${key} in the manifests is
	// replaced by its value.
	// +optional
	Substitute map[string]string `json:"substitute,omitempty"`

	// SubstituteFrom holds references to ConfigMaps and Secrets, in the
	// StageSet's namespace, whose data is used for substitution. Values of
	// Substitute take precedence; later references override earlier ones.
	// +optional
	SubstituteFrom []SubstituteReference `json:"substituteFrom,omitempty"`
}

// SubstituteReference points at a ConfigMap or Secret holding substitution
// variables.
type SubstituteReference struct {
	// Kind of the values referent.
	// +kubebuilder:validation:Enum=Secret;ConfigMap
	// +required
	Kind string `json:"kind"`

	// Name of the values referent, in the StageSet's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Optional lets the run go on when the referent does not exist.
	// +optional
	Optional bool `json:"optional,omitempty"`
}

// DriftDetection configures how drift of applied objects is handled.
type DriftDetection struct {
	// Mode is Enabled (drift is corrected), Warn (drift is reported but not
	// corrected) or Disabled (objects are applied only for a new revision or
	// a spec change).
	// +kubebuilder:validation:Enum=Enabled;Warn;Disabled
	// +kubebuilder:default=Enabled
	// +optional
	Mode string `json:"mode,omitempty"`

	// Ignore excludes fields of selected objects from drift comparison.
	// +optional
	Ignore []IgnoreRule `json:"ignore,omitempty"`
}

// IgnoreRule excludes JSON pointer paths of selected objects from drift
// comparison.
type IgnoreRule struct {
	// Paths are JSON pointers (RFC 6901) into the object, such as
	// /spec/replicas.
	// +kubebuilder:validation:MinItems=1
	// +required
	Paths []string `json:"paths"`

	// Target selects the objects the paths apply to. All objects when unset.
	// +optional
	Target *kustomize.Selector `json:"target,omitempty"`
}

// UpdateWindow is a recurring period in which new rollouts are allowed
// (Allow) or held (Deny).
type UpdateWindow struct {
	// Type is Allow or Deny.
	// +kubebuilder:validation:Enum=Allow;Deny
	// +required
	Type string `json:"type"`

	// Schedule is a five-field cron expression for the window's starts.
	// +kubebuilder:validation:MinLength=1
	// +required
	Schedule string `json:"schedule"`

	// Duration is how long the window stays open after each start.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="duration must be greater than zero"
	// +required
	Duration metav1.Duration `json:"duration"`

	// TimeZone is the IANA time zone of the schedule.
	// +kubebuilder:default=UTC
	// +optional
	TimeZone string `json:"timeZone,omitempty"`
}

// StageActions are the actions run around a stage.
type StageActions struct {
	// Pre actions run before the stage applies; a failure aborts the stage
	// with nothing applied.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	Pre []Action `json:"pre,omitempty"`

	// Post actions run after the stage is healthy; the stage is Ready only
	// when they succeed.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	Post []Action `json:"post,omitempty"`

	// OnFailure actions run, best effort, when the stage fails.
	// +kubebuilder:validation:MaxItems=20
	// +optional
	OnFailure []Action `json:"onFailure,omitempty"`
}

// Action is one named step with exactly one verb: patch, http, job or wait.
// +kubebuilder:validation:XValidation:rule="[has(self.patch), has(self.http), has(self.job), has(self.wait)].filter(x, x).size() == 1",message="an action must set exactly one of patch, http, job or wait"
type Action struct {
	// Name identifies the action in events and status.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	// +required
	Name string `json:"name"`

	// Timeout bounds the action. Defaults to the stage timeout.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeout must be greater than zero"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// Patch patches one object in the cluster.
	// +optional
	Patch *PatchAction `json:"patch,omitempty"`

	// HTTP calls a URL.
	// +optional
	HTTP *HTTPAction `json:"http,omitempty"`

	// Job runs the Jobs found at a path of the stage's artifact to completion.
	// +optional
	Job *JobAction `json:"job,omitempty"`

	// Wait waits for a duration, or until a CEL expression over an object
	// holds.
	// +optional
	Wait *WaitAction `json:"wait,omitempty"`
}

// ObjectReference names one object in the cluster.
type ObjectReference struct {
	// APIVersion of the object.
	// +kubebuilder:validation:MinLength=1
	// +required
	APIVersion string `json:"apiVersion"`

	// Kind of the object.
	// +kubebuilder:validation:MinLength=1
	// +required
	Kind string `json:"kind"`

	// Name of the object.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`

	// Namespace of the object. Defaults to the StageSet's namespace (not the
	// stage's target namespace), for namespaced kinds.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// PatchAction patches one object.
type PatchAction struct {
	// Target is the object to patch.
	// +required
	Target ObjectReference `json:"target"`

	// Type of the patch.
	// +kubebuilder:validation:Enum=merge;json6902;strategic
	// +kubebuilder:default=merge
	// +optional
	Type string `json:"type,omitempty"`

	// Patch is the patch document, in YAML or JSON.
	// +kubebuilder:validation:MinLength=1
	// +required
	Patch string `json:"patch"`
}

// HTTPAction sends one HTTP request. Redirects are not followed.
type HTTPAction struct {
	// URL to call. When the controller runs with --allowed-action-hosts,
	// the host must match one of its globs; without it, only public
	// addresses may be called. Link-local and cloud metadata addresses are
	// always refused.
	// +kubebuilder:validation:Pattern="^https?://"
	// +required
	URL string `json:"url"`

	// Method of the request.
	// +kubebuilder:validation:Enum=GET;POST;PUT;PATCH;DELETE
	// +kubebuilder:default=POST
	// +optional
	Method string `json:"method,omitempty"`

	// HeadersFrom names a Secret, in the StageSet's namespace, whose data
	// entries are sent as request headers.
	// +optional
	HeadersFrom *meta.LocalObjectReference `json:"headersFrom,omitempty"`

	// Body of the request.
	// +optional
	Body string `json:"body,omitempty"`

	// ExpectedStatus lists the response codes that count as success.
	// Defaults to any 2xx.
	// +optional
	ExpectedStatus []int `json:"expectedStatus,omitempty"`
}

// JobAction runs Jobs from the stage's artifact to completion.
type JobAction struct {
	// Path of the Job manifests inside the stage's artifact.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path must be relative to the artifact root"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="path must not contain '..'"
	// +required
	Path string `json:"path"`
}

// WaitAction waits for a fixed duration, or until a CEL expression over an
// object holds.
// +kubebuilder:validation:XValidation:rule="has(self.duration) != has(self.target)",message="a wait action sets either duration, or target and expr"
// +kubebuilder:validation:XValidation:rule="has(self.target) == has(self.expr)",message="a wait action with a target needs an expr, and an expr needs a target"
type WaitAction struct {
	// Duration to wait.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`

	// Target is the object the expression is evaluated on.
	// +optional
	Target *ObjectReference `json:"target,omitempty"`

	// Expr is a CEL expression over the target object (as `self`) that must
	// evaluate to true.
	// +optional
	Expr string `json:"expr,omitempty"`
}

// StageSetStatus is the observed state of a StageSet.
type StageSetStatus struct {
	// The reconcile.fluxcd.io/requestedAt token is recorded with the outcome
	// of the run that acted on it, so a run cut short (the controller
	// stopped, or the run restarted for a newer change) acts on it again. A
	// new token also lifts the hold on a rolled back revision set.
	meta.ReconcileRequestStatus `json:",inline"`

	// The reconcile.fluxcd.io/forceAt token is recorded with the outcome of
	// the run that acted on it, so a run cut short acts on it again. A new
	// token does what a new requestedAt token does and also starts a
	// rollout that an update window defers, at once.
	meta.ForceRequestStatus `json:",inline"`

	// ObservedGeneration is the last generation the controller acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions hold Ready, Reconciling and Stalled, kstatus-compatible.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// LastAppliedRevision is the revision of spec.sourceRef (else of the
	// first stage's source) in the last fully successful rollout.
	// +optional
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`

	// LastAttemptedRevision is the revision of spec.sourceRef (else of the
	// first stage's source) in the last attempted rollout.
	// +optional
	LastAttemptedRevision string `json:"lastAttemptedRevision,omitempty"`

	// LastAppliedRevisions maps <Kind>/<namespace>/<name> of every source to
	// its revision in the last fully successful rollout.
	// +optional
	LastAppliedRevisions map[string]string `json:"lastAppliedRevisions,omitempty"`

	// LastAttemptedRevisions maps <Kind>/<namespace>/<name> of every source
	// to its revision in the last attempted rollout.
	// +optional
	LastAttemptedRevisions map[string]string `json:"lastAttemptedRevisions,omitempty"`

	// LastAppliedInputs digests what the stages of the last successful run
	// were built from (artifact digests, paths, patches, substitution
	// values), so that a run tells a changed input (an update) from drift
	// the same way before and after a controller restart. It is keyed with
	// the controller's key: it gives nothing away about Secret values.
	// +optional
	LastAppliedInputs string `json:"lastAppliedInputs,omitempty"`

	// LastAttemptedInputs is the same digest for the last attempted
	// rollout: a changed input lifts the hold on a rolled back revision set.
	// +optional
	LastAttemptedInputs string `json:"lastAttemptedInputs,omitempty"`

	// Stages report the progress of each stage, in spec order.
	// +optional
	Stages []StageStatus `json:"stages,omitempty"`

	// PendingUpdate is set while an update window defers a rollout.
	// +optional
	PendingUpdate *PendingUpdate `json:"pendingUpdate,omitempty"`

	// Migrations records every completed migration.
	// +optional
	Migrations []MigrationRecord `json:"migrations,omitempty"`

	// History holds the last rollouts, newest first.
	// +optional
	History []RolloutRecord `json:"history,omitempty"`
}

// StagePhase is where a stage is in its rollout.
// +kubebuilder:validation:Enum=Pending;Migrating;Applying;Verifying;Ready;Failed
type StagePhase string

const (
	// StagePhasePending means the stage has not started yet (it is new), or
	// a new source revision interrupted its wait. A stage the current run
	// has not reached keeps the phase of the last run.
	StagePhasePending StagePhase = "Pending"
	// StagePhaseMigrating means the stage's pending migrations are running.
	StagePhaseMigrating StagePhase = "Migrating"
	// StagePhaseApplying means the stage's objects are being applied.
	StagePhaseApplying StagePhase = "Applying"
	// StagePhaseVerifying means the controller waits for the stage's health.
	StagePhaseVerifying StagePhase = "Verifying"
	// StagePhaseReady means the stage is applied and healthy.
	StagePhaseReady StagePhase = "Ready"
	// StagePhaseFailed means the stage failed in the last run.
	StagePhaseFailed StagePhase = "Failed"
)

// StageStatus is the observed state of one stage.
type StageStatus struct {
	// Name of the stage.
	// +required
	Name string `json:"name"`

	// Phase of the stage in the current or last run.
	// +optional
	Phase StagePhase `json:"phase,omitempty"`

	// Revision of the source the stage was last applied from.
	// +optional
	Revision string `json:"revision,omitempty"`

	// LastTransitionTime is when the phase last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`

	// Message is a human-readable account of the phase.
	// +optional
	Message string `json:"message,omitempty"`

	// Inventory lists the objects the stage applied.
	// +optional
	Inventory *ResourceInventory `json:"inventory,omitempty"`

	// PruneDisabled records the stage's prune: false as the last run saw it
	// in the spec (every run records it). When the stage leaves the spec,
	// its objects are then left in place, as prune: false leaves the
	// objects that leave a stage, and as deletionPolicy MirrorPrune leaves
	// them when the StageSet is deleted.
	// +optional
	PruneDisabled bool `json:"pruneDisabled,omitempty"`

	// PreActionsRevision is the revision the stage's pre actions last ran
	// for: they run once per revision, a restart does not repeat them.
	// +optional
	PreActionsRevision string `json:"preActionsRevision,omitempty"`

	// PostActionsRevision is the revision the stage's post actions last ran
	// for.
	// +optional
	PostActionsRevision string `json:"postActionsRevision,omitempty"`
}

// ResourceInventory lists applied objects, in the format of Flux
// Kustomizations.
type ResourceInventory struct {
	// Entries of the inventory.
	// +required
	Entries []ResourceRef `json:"entries"`
}

// ResourceRef is one inventory entry.
type ResourceRef struct {
	// ID is the object's metadata as <namespace>_<name>_<group>_<kind>.
	// +required
	ID string `json:"id"`

	// Version is the object's API version.
	// +required
	Version string `json:"v"`
}

// PendingUpdate describes a rollout held by a closed update window.
type PendingUpdate struct {
	// Revisions is the deferred revision set, keyed like
	// lastAppliedRevisions.
	// +optional
	Revisions map[string]string `json:"revisions,omitempty"`

	// NextWindowOpens is when the rollout may start.
	// +optional
	NextWindowOpens *metav1.Time `json:"nextWindowOpens,omitempty"`
}

// MigrationRecord records one completed migration.
type MigrationRecord struct {
	// Stage the migration belongs to.
	// +required
	Stage string `json:"stage"`

	// Version of the migration, from its stageset.io/migration annotation.
	// +required
	Version string `json:"version"`

	// Job is the name of the Job that ran the migration.
	// +optional
	Job string `json:"job,omitempty"`

	// CompletedAt is when the Job completed.
	// +optional
	CompletedAt *metav1.Time `json:"completedAt,omitempty"`
}

// RolloutRecord is one entry of status.history.
type RolloutRecord struct {
	// Revisions is the pinned revision set of the rollout.
	// +optional
	Revisions map[string]string `json:"revisions,omitempty"`

	// StartedAt is when the rollout started.
	// +required
	StartedAt metav1.Time `json:"startedAt"`

	// Duration is how long the rollout took.
	// +optional
	Duration metav1.Duration `json:"duration,omitempty"`

	// Result is the Ready reason the rollout ended with.
	// +required
	Result string `json:"result"`
}

// StageSet rolls out an ordered list of stages, each built from a Flux source
// and gated on the health of the previous one.
// +genclient
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ss,categories={all,fluxcd}
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status",description=""
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message",description=""
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp",description=""
// +kubebuilder:validation:XValidation:rule="!has(self.spec.dependsOn) || self.spec.dependsOn.all(d, d.name != self.metadata.name || (has(d.__namespace__) && size(d.__namespace__) > 0))",message="a StageSet cannot depend on itself"
type StageSet struct {
	metav1.TypeMeta `json:",inline"`

	// ObjectMeta is the standard object metadata. The name keys the
	// StageSet's snapshot and migration Secrets and its stageset.io/name
	// label.
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the StageSet: an ordered list of stages,
	// each built from a Flux source artifact and applied only when the
	// previous stage is healthy.
	// +required
	Spec StageSetSpec `json:"spec"`

	// Status is the observed state of the StageSet.
	// +optional
	Status StageSetStatus `json:"status,omitempty"`
}

// StageSetList is a list of StageSets.
// +kubebuilder:object:root=true
type StageSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []StageSet `json:"items"`
}

func init() {
	SchemeBuilder.Register(&StageSet{}, &StageSetList{})
}
