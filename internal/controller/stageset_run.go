package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/action"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/snapshot"
	"github.com/stageset/stageset-controller/internal/source"
	"github.com/stageset/stageset-controller/internal/validation"
	"github.com/stageset/stageset-controller/internal/window"
)

// run is the state of one reconcile of one StageSet: the pinned revision set
// and the built stages, passed around as one value instead of long parameter
// lists.
type run struct {
	r       *StageSetReconciler
	obj     *stagesetv1.StageSet
	patcher *objectPatcher
	started time.Time
	tracked *inflightRun

	// revisions is the pinned revision set: source key → revision.
	revisions map[string]string
	// revision is the revision of spec.sourceRef, else of the first stage's
	// source (status.lastAppliedRevision).
	revision string
	// newRevisions tells that the pinned set differs from the last applied;
	// sameAsAttempted that it is the one the last run attempted.
	newRevisions, sameAsAttempted bool
	// kind is what the run is (decide).
	kind runKind
	// applied tells that every stage was applied and verified.
	applied bool

	// corrected and detected collect the drift the run re-asserted or
	// found (runKind.countsDrift).
	corrected, detected drift

	// requested and forced tell that the run answers a new requestedAt or
	// forceAt token; tokens are recorded as handled when the run ends.
	requested, forced bool
	tokens            handledTokens
	// inputs are what every stage is built from (loadInputs), and
	// inputsDigest their digest.
	inputs       []stageInput
	inputsDigest string
	// plans are the built stages (stages), kept for the snapshot of a
	// successful run; artifacts is the run's artifact cache.
	plans     []plannedStage
	artifacts *source.Cache
	// windows are the update windows, parsed when decide gates a change.
	windows *window.Schedule
	// deferredUntil is the next window opening of a deferred rollout.
	deferredUntil time.Time
	// kube is the StageSet's client (impersonated, or remote).
	kube client.Client
	// kubeConfig is kube's REST config, for what a client.Client cannot
	// do (reading pod logs).
	kubeConfig *rest.Config

	// migrationsDone is the migration ledger, read once (ledger).
	migrationsDone map[string]migration.Record

	// ahead is the validation of the next stage of a rollout, run while
	// the current one is applied (validateAhead).
	ahead *aheadValidation

	// snapshot is the last good snapshot, loaded once (lastSnapshot).
	snapshot       *snapshot.Snapshot
	snapshotErr    error
	snapshotLoaded bool
}

// plannedStage is one stage of the run, built and ready to apply.
type plannedStage struct {
	spec     stagesetv1.Stage
	revision string
	// objects are applied; migrations run before them.
	objects    []*unstructured.Unstructured
	migrations []migration.Migration
	// actionJobs are the Jobs of job actions, keyed by action.Key.
	actionJobs map[string][]*unstructured.Unstructured
}

func (r *StageSetReconciler) newRun(obj *stagesetv1.StageSet, patcher *objectPatcher, tracked *inflightRun) *run {
	return &run{r: r, obj: obj, patcher: patcher, started: time.Now(), tracked: tracked}
}

// execute runs the phases of SPEC §4 in order: validate → dependencies →
// sources → decide what the run is → follow the one path of that kind.
func (s *run) execute(ctx context.Context) error {
	// The admission webhook's checks (validation.StageSet): a StageSet
	// stored while the webhook was down stalls here before anything is
	// read or applied.
	if errs := validation.StageSet(s.obj, validation.Options{NoCrossNamespaceRefs: s.r.NoCrossNamespaceRefs}); len(errs) > 0 {
		return stalled(validation.Reason(errs), fmt.Errorf("invalid spec: %w", errs.ToAggregate()))
	}
	s.recordPruneSettings()
	if err := s.r.checkDependencies(ctx, s.obj); err != nil {
		return err
	}
	resolved, err := s.resolveSources(ctx)
	if err != nil {
		return err
	}
	if err := s.loadInputs(ctx, resolved); err != nil {
		return err
	}
	defer s.closeArtifacts()
	if s.kind, err = s.decide(ctx); err != nil {
		return err
	}
	if s.kind == kindSteady && s.obj.GetDriftDetectionMode() == stagesetv1.DriftDetectionDisabled {
		// Nothing new to apply and drift is not looked at.
		return s.succeeded()
	}

	if s.kube, s.kubeConfig, err = s.r.Clients.For(ctx, s.obj); err != nil {
		return failed(stagesetv1.StageFailedReason, fmt.Errorf("building the client: %w", err))
	}
	mgr := apply.NewManager(s.kube, ControllerName)
	switch s.kind {
	case kindHeld:
		return s.hold(ctx, mgr)
	case kindDeferred:
		return s.deferRollout(ctx, mgr)
	case kindSteady:
		return s.reassert(ctx, mgr)
	default:
		return s.rollout(ctx, mgr)
	}
}

// recordPruneSettings copies the prune setting of every stage of the spec
// into its status entry, on every run: a stage that leaves the spec takes
// its setting with it, and teardownRemovedStages and the deletion's
// teardown then go by the last one recorded. Every run, not only those that
// apply: a steady run with drift detection disabled or in Warn mode applies
// nothing, and a status written before the field existed is filled in by
// the first run after the upgrade.
func (s *run) recordPruneSettings() {
	for i := range s.obj.Status.Stages {
		s.recordPruneSetting(&s.obj.Status.Stages[i])
	}
}

// recordPruneSetting records the prune setting of the stage of the spec
// that status is the entry of; a removed stage's entry keeps its own.
func (s *run) recordPruneSetting(status *stagesetv1.StageStatus) {
	if i := s.stageIndex(status.Name); i >= 0 {
		status.PruneDisabled = !s.obj.Spec.Stages[i].IsPruneEnabled()
	}
}

// rollout applies the built stages in order, each gated on the health of the
// one before (first rollout, update, reapply), and rolls back on failure.
func (s *run) rollout(ctx context.Context, mgr *apply.Manager) error {
	// Job actions run only in rollouts, so no other kind builds them.
	if err := s.buildActionJobs(ctx); err != nil {
		return err
	}
	// A rollout replaces whatever change was pending.
	s.obj.Status.PendingUpdate = nil
	s.obj.Status.LastAttemptedInputs = s.inputsDigest
	conditions.MarkUnknown(s.obj, meta.ReadyCondition, meta.ProgressingReason, "Reconciliation in progress")
	if s.nextPatchesSoon(0) {
		s.progressLater("Rolling out %d stages at revision %s", len(s.obj.Spec.Stages), s.revision)
	} else if err := s.patchProgress(ctx, "Rolling out %d stages at revision %s", len(s.obj.Spec.Stages), s.revision); err != nil {
		return err
	}

	// s.ahead changes at every stage: stop the one running at the end.
	defer func() { s.ahead.stop() }()
	for _, plan := range s.plans {
		// A newer revision ends the run at a stage boundary; the next run
		// rolls it out from the stage this one reached.
		if s.tracked.isSuperseded() {
			return errSuperseded
		}
		if err := s.applyStage(ctx, mgr, plan); err != nil {
			s.ahead.stop()
			if interrupted(ctx) || errors.Is(err, errSuperseded) || isBookkeeping(err) {
				return err
			}
			s.runOnFailure(ctx, plan)
			if s.obj.Spec.RollbackOnFailure {
				return s.rollback(ctx, mgr, plan.spec.Name, err)
			}
			return err
		}
	}
	if err := s.teardownRemovedStages(ctx, mgr); err != nil {
		return err
	}
	if err := s.saveSnapshot(ctx); err != nil {
		return err
	}
	return s.succeeded()
}

// reassert re-applies (or, in Warn mode, diffs) what the last run applied,
// stage by stage: a failure is reported, never rolled back.
func (s *run) reassert(ctx context.Context, mgr *apply.Manager) error {
	plans, err := s.stages(ctx)
	if err != nil {
		return err
	}
	for _, plan := range plans {
		if s.tracked.isSuperseded() {
			return errSuperseded
		}
		if err := s.reassertStage(ctx, mgr, plan); err != nil {
			return err
		}
	}
	if err := s.teardownRemovedStages(ctx, mgr); err != nil {
		return err
	}
	return s.succeeded()
}

// succeeded records that the run's revision set and inputs are applied.
func (s *run) succeeded() error {
	s.applied = true
	s.obj.Status.LastAppliedRevision = s.revision
	s.obj.Status.LastAppliedRevisions = s.revisions
	s.obj.Status.LastAppliedInputs = s.inputsDigest
	return nil
}

// resolveSources pins the revision of every distinct source of the run.
func (s *run) resolveSources(ctx context.Context) (map[string]*source.Resolved, error) {
	resolved := map[string]*source.Resolved{}
	for _, ref := range s.obj.GetSourceRefs() {
		res, err := s.r.Sources.Resolve(ctx, s.obj.Namespace, ref)
		if err != nil {
			return nil, classifySourceError(err)
		}
		resolved[ref.String()] = res
	}

	s.revisions = make(map[string]string, len(resolved))
	for key, res := range resolved {
		s.revisions[key] = res.Artifact.Revision
	}
	primary, _ := s.obj.GetStageSourceRef(s.obj.Spec.Stages[0])
	if s.obj.Spec.SourceRef != nil {
		primary, _ = s.obj.GetStageSourceRef(stagesetv1.Stage{})
	}
	s.revision = s.revisions[primary.String()]
	s.newRevisions = !maps.Equal(s.revisions, s.obj.Status.LastAppliedRevisions)
	s.sameAsAttempted = maps.Equal(s.revisions, s.obj.Status.LastAttemptedRevisions)
	s.r.runs.pin(s.tracked, s.revisions)
	s.obj.Status.LastAttemptedRevision = s.revision
	s.obj.Status.LastAttemptedRevisions = s.revisions
	return resolved, nil
}

func classifySourceError(err error) error {
	var notReady *source.NotReadyError
	var denied *source.AccessDeniedError
	switch {
	case errors.As(err, &notReady):
		return waiting(stagesetv1.SourceNotReadyReason, err)
	case errors.As(err, &denied):
		return stalled(stagesetv1.AccessDeniedReason, err)
	default:
		return failed(stagesetv1.SourceNotReadyReason, err)
	}
}

// stageInput is what a stage is built from.
type stageInput struct {
	stage    stagesetv1.Stage
	artifact meta.Artifact
	input    build.Input
	// fingerprint changes when the artifact or any input does.
	fingerprint string
}

// loadInputs gathers what every stage is built from, reading the
// substituteFrom ConfigMaps and Secrets, into s.inputs, and their digest
// into s.inputsDigest.
func (s *run) loadInputs(ctx context.Context, resolved map[string]*source.Resolved) error {
	inputs := make([]stageInput, 0, len(s.obj.Spec.Stages))
	digest := sha256.New()
	for _, stage := range s.obj.Spec.Stages {
		ref, _ := s.obj.GetStageSourceRef(stage) // validation.StageSet checked every stage has one
		vars, err := build.LoadVariables(ctx, s.r.APIReader, s.obj.Namespace, stage.PostBuild)
		if err != nil {
			return failed(stagesetv1.BuildFailedReason, fmt.Errorf("stage %q: %w", stage.Name, err))
		}
		in := stageInput{stage: stage, artifact: resolved[ref.String()].Artifact, input: build.StageInput(s.obj, stage, vars)}
		in.fingerprint = build.Fingerprint(in.artifact.Digest, in.input)
		fmt.Fprintf(digest, "%s=%s\n", stage.Name, in.fingerprint)
		inputs = append(inputs, in)
	}
	// Keyed: the digest is kept in the status, where whoever reads the
	// StageSet could otherwise try guesses of the Secret values it covers.
	s.inputsDigest = s.r.Integrity.Sum("stage-inputs", s.obj.Namespace, s.obj.Name, hex.EncodeToString(digest.Sum(nil)))
	s.inputs = inputs
	return nil
}

// stages builds every stage, once per run, before anything is written: a
// build error, or an object claimed by two stages, fails the run with nothing
// applied. Each distinct artifact is fetched once.
func (s *run) stages(ctx context.Context) ([]plannedStage, error) {
	if s.plans != nil {
		return s.plans, nil
	}
	plans := make([]plannedStage, 0, len(s.inputs))
	claims := build.Claims{}
	for _, in := range s.inputs {
		stage := in.stage
		// The last build of the stage serves when neither the artifact nor
		// the inputs changed: no download, no kustomize run.
		cacheKey := buildCachePrefix(s.obj.Namespace, s.obj.Name) + stage.Name
		objects, hit := s.r.Builds.Get(cacheKey, in.fingerprint)
		if !hit {
			input := in.input
			var err error
			if input.Root, err = s.artifact(ctx, in.artifact); err != nil {
				return nil, failed(stagesetv1.ArtifactFailedReason, fmt.Errorf("stage %q: %w", stage.Name, err))
			}
			input.MaxObjects = s.r.MaxObjectsPerStage
			if objects, err = build.Build(input); err != nil {
				return nil, failed(stagesetv1.BuildFailedReason, fmt.Errorf("stage %q: %w", stage.Name, err))
			}
			s.r.Builds.Put(cacheKey, in.fingerprint, objects)
		}
		migrations, objects, err := migration.Split(objects)
		if err != nil {
			return nil, failed(stagesetv1.BuildFailedReason, fmt.Errorf("stage %q: %w", stage.Name, err))
		}
		if err := claims.Claim(stage.Name, objects); err != nil {
			return nil, failed(stagesetv1.BuildFailedReason, err)
		}
		plans = append(plans, plannedStage{spec: stage, revision: in.artifact.Revision, objects: objects, migrations: migrations})
	}
	s.plans = plans
	return plans, nil
}

// buildActionJobs builds the Jobs of the stages' job actions (s.plans and
// s.inputs are in stage order).
func (s *run) buildActionJobs(ctx context.Context) error {
	for i, in := range s.inputs {
		if !action.HasJobs(in.stage) {
			continue
		}
		root, err := s.artifact(ctx, in.artifact)
		if err != nil {
			return failed(stagesetv1.ArtifactFailedReason, fmt.Errorf("stage %q: %w", in.stage.Name, err))
		}
		if s.plans[i].actionJobs, err = action.BuildJobs(root, in.input.TargetNamespace, in.stage, s.r.MaxObjectsPerStage); err != nil {
			return failed(stagesetv1.BuildFailedReason, fmt.Errorf("stage %q: %w", in.stage.Name, err))
		}
	}
	return nil
}

// artifact fetches an artifact into the run's cache, created on first need:
// a run that builds nothing downloads nothing.
func (s *run) artifact(ctx context.Context, artifact meta.Artifact) (string, error) {
	if s.artifacts == nil {
		cache, err := source.NewCache(s.r.Fetcher)
		if err != nil {
			return "", err
		}
		s.artifacts = cache
	}
	return s.artifacts.Get(ctx, artifact)
}

// closeArtifacts removes the run's artifact cache.
func (s *run) closeArtifacts() {
	if s.artifacts != nil {
		_ = s.artifacts.Close()
	}
}
