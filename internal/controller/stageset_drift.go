package controller

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// drift collects, per stage, the objects a steady-state run found drifted:
// re-asserted (mode Enabled) or only detected (mode Warn).
type drift struct {
	stages  []string            // in the order they were seen
	byStage map[string][]string // stage → Kind/namespace/name
}

// record adds the objects of a change set that a steady-state apply (or
// dry-run) created or configured: anything else means no drift.
func (d *drift) record(stage string, cs *ssa.ChangeSet) {
	if cs == nil {
		return
	}
	for _, e := range cs.Entries {
		if e.Action != ssa.CreatedAction && e.Action != ssa.ConfiguredAction {
			continue
		}
		if d.byStage == nil {
			d.byStage = map[string][]string{}
		}
		if _, seen := d.byStage[stage]; !seen {
			d.stages = append(d.stages, stage)
		}
		d.byStage[stage] = append(d.byStage[stage], e.Subject)
	}
}

func (d *drift) empty() bool { return len(d.stages) == 0 }

// String lists the drifted objects per stage, for the event message.
func (d *drift) String() string {
	parts := make([]string, 0, len(d.stages))
	for _, stage := range d.stages {
		objects := append([]string(nil), d.byStage[stage]...)
		sort.Strings(objects)
		parts = append(parts, fmt.Sprintf("stage %q: %s", stage, strings.Join(objects, ", ")))
	}
	return strings.Join(parts, "; ")
}

// reportDrift emits one event per run for the drift the run corrected
// (DriftCorrected, counted in stageset_drift_corrected_total) or, in Warn
// mode, only detected (DriftDetected).
func (r *StageSetReconciler) reportDrift(s *run) {
	obj := s.obj
	if !s.corrected.empty() {
		for _, stage := range s.corrected.stages {
			r.Metrics.RecordDriftCorrected(obj.Namespace, obj.Name, stage, len(s.corrected.byStage[stage]))
		}
		r.eventf(obj, s.revision, corev1.EventTypeWarning, stagesetv1.DriftCorrectedReason, "Drift corrected: %s", s.corrected.String())
	}
	if !s.detected.empty() {
		r.eventf(obj, s.revision, corev1.EventTypeWarning, stagesetv1.DriftDetectedReason, "Drift detected (not corrected, driftDetection.mode is Warn): %s", s.detected.String())
	}
}
