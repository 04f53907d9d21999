package controller

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
)

// MigrationChangedReason is the Warning event for a recorded migration whose
// Job changed since it ran: the change is reported, never executed (SPEC §6).
const MigrationChangedReason = "MigrationChanged"

// migrate runs the stage's pending migrations before anything of the stage
// changes (SPEC §6): in version order, one at a time, each to completion
// within the stage budget, through the StageSet's identity. A completed
// version is recorded in the ledger Secret and in status.migrations and never
// runs again; a restarted controller finds the Job by its deterministic name
// and waits on it instead of starting another.
func (s *run) migrate(ctx context.Context, stage stagesetv1.Stage, plan plannedStage, ranNow map[string]bool) error {
	if len(plan.migrations) == 0 {
		return nil
	}
	done, err := s.ledger(ctx)
	if err != nil {
		if transientAPIError(err) {
			return bookkeepingFailed(fmt.Errorf("reading the migration ledger: %w", err))
		}
		return s.migrationFailed(ctx, stage.Name, "", fmt.Errorf("reading the migration ledger: %w", err))
	}
	for _, m := range plan.migrations {
		if rec, ok := done[migration.Key(stage.Name, m.Version)]; ok {
			if rec.JobSpecHash != migration.SpecHash(m.Job) {
				s.r.eventf(s.obj, plan.revision, corev1.EventTypeWarning, MigrationChangedReason, "Migration %q of stage %q changed since it completed; it is not run again", m.Version, stage.Name)
			}
			continue
		}

		job := s.migrationJob(stage, m)
		s.setPhase(stage.Name, stagesetv1.StagePhaseMigrating, fmt.Sprintf("Running migration %q (Job %s)", m.Version, job.GetName()))
		if err := s.patchProgress(ctx, "Migrating stage %q: version %q", stage.Name, m.Version); err != nil {
			return err
		}
		s.r.eventf(s.obj, plan.revision, corev1.EventTypeNormal, stagesetv1.MigrationStartedReason, "Migration %q of stage %q started (Job %s/%s)", m.Version, stage.Name, job.GetNamespace(), job.GetName())
		// Waiting on the Job is what a newer revision may cut short: the
		// Job runs on, and the next run waits on it again.
		waitCtx, endWait := s.tracked.wait(ctx)
		err := s.actionRunner().RunJobs(waitCtx, s.jobOwner(stage.Name), []*unstructured.Unstructured{job}, s.obj.GetStageTimeout(stage))
		if err != nil {
			if !interrupted(waitCtx) {
				err = s.changedSinceFailure(ctx, job, m, err)
			}
			err = s.migrationFailed(waitCtx, stage.Name, m.Version, err)
		}
		endWait()
		if err != nil {
			return err
		}

		rec := migration.Record{Stage: stage.Name, Version: m.Version, Job: job.GetName(), CompletedAt: time.Now().UTC(), JobSpecHash: migration.SpecHash(m.Job)}
		if err := s.r.Migrations.Record(ctx, s.obj, rec); err != nil {
			if transientAPIError(err) {
				// The API server failed the write: the migration did not
				// fail. The next run finds its completed Job and records it.
				return bookkeepingFailed(fmt.Errorf("migration %q of stage %q completed, but recording it failed: %w", m.Version, stage.Name, err))
			}
			return s.migrationFailed(ctx, stage.Name, m.Version, fmt.Errorf("recording it in the ledger: %w", err))
		}
		done[migration.Key(stage.Name, m.Version)] = rec
		s.obj.Status.Migrations = append(s.obj.Status.Migrations, rec.Status())
		ranNow[m.Version] = true
		s.r.eventf(s.obj, plan.revision, corev1.EventTypeNormal, stagesetv1.MigrationCompletedReason, "Migration %q of stage %q completed", m.Version, stage.Name)
	}
	return nil
}

// cleanupMigrationJobs deletes the Jobs of migrations that completed before
// this rollout of the stage: a completed Job stays (its logs readable) until
// the stage's next successful rollout; the ledger keeps the record. Best
// effort: a Job that cannot be deleted is tried again next time.
func (s *run) cleanupMigrationJobs(ctx context.Context, stage stagesetv1.Stage, ranNow map[string]bool) {
	done, err := s.ledger(ctx)
	if err != nil {
		return
	}
	for _, rec := range done {
		if rec.Stage != stage.Name || ranNow[rec.Version] {
			continue
		}
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: s.jobNamespace(stage), Name: rec.Job}}
		_ = s.kube.Delete(ctx, job, client.PropagationPolicy(metav1.DeletePropagationBackground))
	}
}

// ledger returns the completed migrations of the StageSet, read from the
// ledger Secret once per run; the records the run writes are added to it.
func (s *run) ledger(ctx context.Context) (map[string]migration.Record, error) {
	if s.migrationsDone == nil {
		done, err := s.r.Migrations.Load(ctx, s.obj)
		if err != nil {
			return nil, err
		}
		s.migrationsDone = done
	}
	return s.migrationsDone, nil
}

// migrationJob is the Job that runs a migration: the built Job under its
// deterministic name, in the stage's namespace, with its
// stageset.io/migration annotation (RunJobs adds the ownership labels).
func (s *run) migrationJob(stage stagesetv1.Stage, m migration.Migration) *unstructured.Unstructured {
	job := m.Job.DeepCopy()
	job.SetName(migration.JobName(s.obj.Name, stage.Name, m.Version))
	if job.GetNamespace() == "" {
		job.SetNamespace(s.jobNamespace(stage))
	}
	annotations := job.GetAnnotations()
	annotations[migration.SpecHashAnnotation] = migration.SpecHash(m.Job)
	job.SetAnnotations(annotations)
	return job
}

// changedSinceFailure adds to the failure of a migration Job what to do
// when the Job that failed is not the one the stage builds now: a failed
// migration is never re-run under the same version by itself (its Job is
// kept for diagnosis, and the data may be half-migrated), so a fixed
// manifest alone would only repeat the old failure.
func (s *run) changedSinceFailure(ctx context.Context, job *unstructured.Unstructured, m migration.Migration, err error) error {
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(job.GroupVersionKind())
	if s.kube.Get(ctx, client.ObjectKeyFromObject(job), existing) != nil {
		return err
	}
	ran := existing.GetAnnotations()[migration.SpecHashAnnotation]
	if ran == "" || ran == migration.SpecHash(m.Job) {
		return err
	}
	return fmt.Errorf("%w; the Job of version %q changed since it failed, and a failed migration is not run again under the same version: "+
		"bump the %s annotation to run the changed Job, or delete Job %s/%s to run version %q again",
		err, m.Version, stagesetv1.MigrationAnnotation, job.GetNamespace(), job.GetName(), m.Version)
}

// jobNamespace is where a stage's Jobs that name no namespace run: the
// stage's target namespace, else the StageSet's.
func (s *run) jobNamespace(stage stagesetv1.Stage) string {
	if ns := s.obj.GetStageTargetNamespace(stage); ns != "" {
		return ns
	}
	return s.obj.Namespace
}

// migrationFailed marks the stage Failed and returns the MigrationFailed
// error; the failed Job is kept for diagnosis. An interrupted wait is no
// failure: the Job runs on, and the next run waits on it again.
func (s *run) migrationFailed(ctx context.Context, stage, version string, err error) error {
	if interrupted(ctx) {
		return s.interruptStage(ctx, stage, fmt.Errorf("migration %q: %w", version, err))
	}
	if version == "" {
		// The ledger could not be read (or failed verification): no
		// migration of the stage may run, nor be taken as done.
		err = fmt.Errorf("migrations of stage %q cannot run: %w", stage, err)
	} else {
		err = fmt.Errorf("migration %q of stage %q failed: %w", version, stage, err)
	}
	s.setPhase(stage, stagesetv1.StagePhaseFailed, err.Error())
	s.r.Metrics.SetStageReady(s.obj.Namespace, s.obj.Name, stage, false)
	s.r.eventf(s.obj, s.revision, corev1.EventTypeWarning, stagesetv1.MigrationFailedReason, "%s", err.Error())
	return &runError{reason: stagesetv1.MigrationFailedReason, stage: stage, err: err}
}
