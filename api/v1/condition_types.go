package v1

// Ready reasons (SPEC §9). Every reason except Succeeded, Suspended and
// Progressing has a runbook under docs/runbooks/<reason lower-case>.md.
const (
	// SucceededReason means every stage is applied and healthy.
	SucceededReason = "Succeeded"

	// SuspendedReason means spec.suspend is true: nothing is reconciled.
	SuspendedReason = "Suspended"

	// ProgressingReason means a rollout is under way.
	ProgressingReason = "Progressing"

	// DependencyNotReadyReason means a StageSet named in spec.dependsOn is
	// not Ready yet.
	DependencyNotReadyReason = "DependencyNotReady"

	// SourceNotReadyReason means a source is missing, not Ready, or has no
	// artifact yet.
	SourceNotReadyReason = "SourceNotReady"

	// ArtifactFailedReason means an artifact could not be fetched, did not
	// match its digest, or could not be extracted.
	ArtifactFailedReason = "ArtifactFailed"

	// BuildFailedReason means the kustomize build, a patch or a substitution
	// failed, or two stages claim the same object.
	BuildFailedReason = "BuildFailed"

	// StageFailedReason means apply, prune, health or an action failed at a
	// stage.
	StageFailedReason = "StageFailed"

	// MigrationFailedReason means a versioned migration of a stage failed.
	MigrationFailedReason = "MigrationFailed"

	// RolledBackReason means a failed rollout was rolled back to the last
	// good snapshot.
	RolledBackReason = "RolledBack"

	// RollbackFailedReason means the rollback itself failed.
	RollbackFailedReason = "RollbackFailed"

	// UpdateDeferredReason means a closed update window holds the first
	// rollout of a StageSet that has nothing applied yet.
	UpdateDeferredReason = "UpdateDeferred"

	// InvalidSpecReason means the spec cannot work as written (a dependency
	// cycle, a bad window, a rule the API server should have refused). The
	// StageSet is Stalled until its spec changes.
	InvalidSpecReason = "InvalidSpec"

	// ReconciliationFailedReason means the run ended on an internal error
	// of the controller (a recovered panic), not on anything the StageSet
	// asked for. The run is retried after spec.retryInterval.
	ReconciliationFailedReason = "ReconciliationFailed"

	// AccessDeniedReason means a cross-namespace reference was refused under
	// --no-cross-namespace-refs. The StageSet is Stalled until its spec
	// changes.
	AccessDeniedReason = "AccessDenied"
)

// Event reasons that are not Ready reasons (SPEC §9). The controller also
// emits MigrationChanged, the Warning event for a completed migration whose
// Job changed since it ran (declared in internal/controller).
const (
	// DriftCorrectedReason is the Warning event listing the objects a
	// steady-state run re-asserted.
	DriftCorrectedReason = "DriftCorrected"

	// DriftDetectedReason is the Warning event listing drifted objects when
	// driftDetection.mode is Warn.
	DriftDetectedReason = "DriftDetected"

	// MigrationStartedReason is the Normal event for a migration Job start.
	MigrationStartedReason = "MigrationStarted"

	// MigrationCompletedReason is the Normal event for a completed migration.
	MigrationCompletedReason = "MigrationCompleted"

	// OnFailureActionReason is the Warning event reporting an onFailure
	// action and its result.
	OnFailureActionReason = "OnFailureAction"

	// RollbackStoreFailedReason is the Warning event for a snapshot that could
	// not be stored, or that cannot be used (unreadable, or failing
	// verification against the controller's key).
	RollbackStoreFailedReason = "RollbackStoreFailed"

	// TeardownAbandonedReason is the Warning event of a deletion that gave up
	// tearing down the applied objects because the StageSet's identity is
	// gone (service account, its RBAC or the kubeConfig Secret), naming the
	// objects left in the cluster.
	TeardownAbandonedReason = "TeardownAbandoned"

	// TeardownTimeoutReason is the Warning event of a deletion whose stage
	// still had objects terminating (held by finalizers) when its timeout
	// passed: the stages before it are torn down anyway, and the event names
	// what still terminates.
	TeardownTimeoutReason = "TeardownTimeout"
)

// Labels and annotations on applied objects (SPEC §2).
const (
	// NameLabel holds the name of the StageSet that applied an object.
	NameLabel = GroupName + "/name"
	// NamespaceLabel holds the namespace of the StageSet that applied an object.
	NamespaceLabel = GroupName + "/namespace"
	// StageLabel holds the stage that applied an object.
	StageLabel = GroupName + "/stage"

	// PruneAnnotation set to "disabled" keeps an object when it leaves its stage.
	PruneAnnotation = GroupName + "/prune"
	// ForceAnnotation set to "enabled" recreates an object whose immutable
	// fields changed.
	ForceAnnotation = GroupName + "/force"
	// SSAAnnotation selects the apply policy of an object: Override, Merge,
	// IfNotPresent or Ignore.
	SSAAnnotation = GroupName + "/ssa"
	// MigrationAnnotation on a Job marks it as the migration of that version.
	MigrationAnnotation = GroupName + "/migration"

	// DisabledValue and EnabledValue are the values of the prune and force
	// annotations.
	DisabledValue = "disabled"
	EnabledValue  = "enabled"
)

// Deletion policies.
const (
	// DeletionPolicyMirrorPrune deletes the objects of stages with prune
	// enabled and orphans the rest.
	DeletionPolicyMirrorPrune = "MirrorPrune"
	// DeletionPolicyDelete deletes every applied object.
	DeletionPolicyDelete = "Delete"
	// DeletionPolicyOrphan leaves every applied object in place.
	DeletionPolicyOrphan = "Orphan"
)

// Drift detection modes.
const (
	DriftDetectionEnabled  = "Enabled"
	DriftDetectionWarn     = "Warn"
	DriftDetectionDisabled = "Disabled"
)

// Update window types.
const (
	UpdateWindowAllow = "Allow"
	UpdateWindowDeny  = "Deny"
)

// Source kinds a stage can be built from.
const (
	GitRepositoryKind    = "GitRepository"
	OCIRepositoryKind    = "OCIRepository"
	BucketKind           = "Bucket"
	ExternalArtifactKind = "ExternalArtifact"

	// SourceAPIVersion is the default API version of source references.
	SourceAPIVersion = "source.toolkit.fluxcd.io/v1"
)
