package controller

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

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
	// Warn mode leaves the drift in place, so every run finds it again: the
	// event says it once per drifted set (SPEC §9: no event repeats for an
	// unchanged state), and again once the drift was gone in between.
	key := types.NamespacedName{Namespace: obj.Namespace, Name: obj.Name}
	if !s.detected.empty() {
		if r.warned.changed(key, s.detected.String()) {
			r.eventf(obj, s.revision, corev1.EventTypeWarning, stagesetv1.DriftDetectedReason, "Drift detected (not corrected, driftDetection.mode is Warn): %s", s.detected.String())
		}
	} else if s.applied {
		r.warned.forget(key)
	}
}

// warnedDrift remembers, per StageSet, the drift last reported by a
// DriftDetected event. It is memory only: after a restart a drift still in
// place is reported once more.
type warnedDrift struct {
	mu   sync.Mutex
	sets map[types.NamespacedName]string
}

// changed records drift as reported and tells whether it differs from what
// was reported last.
func (w *warnedDrift) changed(key types.NamespacedName, drift string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sets == nil {
		w.sets = map[types.NamespacedName]string{}
	}
	if w.sets[key] == drift {
		return false
	}
	w.sets[key] = drift
	return true
}

// forget drops what was reported for a StageSet: its drift is gone, or it
// is.
func (w *warnedDrift) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.sets, key)
}
