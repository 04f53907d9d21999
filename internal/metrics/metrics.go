// Package metrics defines the stageset_* Prometheus collectors (SPEC §10),
// registered on the controller-runtime registry beside controller_runtime_*
// and workqueue_* so one endpoint serves them all.
package metrics

import (
	"regexp"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	fluxmetrics "github.com/fluxcd/pkg/runtime/metrics"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Recorder records the StageSet metrics. Its collectors are the only package
// globals of the project: Prometheus registries are process-wide.
type Recorder struct {
	reconciles   *prometheus.CounterVec
	stageApplied *prometheus.CounterVec
	stageReady   *prometheus.GaugeVec
	drift        *prometheus.CounterVec
	deferred     *prometheus.CounterVec
	certRenewal  prometheus.Counter
	// flux are the gotk_* series every Flux controller exports
	// (gotk_reconcile_duration_seconds, gotk_reconcile_condition,
	// gotk_suspend_status), so Flux's dashboards and alerts see StageSets.
	flux *fluxmetrics.Recorder
}

var defaultRecorder = newRecorder()

func newRecorder() *Recorder {
	return &Recorder{
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stageset_reconcile_total",
			Help: "StageSet reconciles by terminal Ready reason.",
		}, []string{"namespace", "name", "reason"}),
		stageApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stageset_stage_applied_total",
			Help: "Stages applied and verified healthy.",
		}, []string{"namespace", "name", "stage"}),
		stageReady: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "stageset_stage_ready",
			Help: "1 when the stage is Ready, else 0.",
		}, []string{"namespace", "stageset", "stage"}),
		drift: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stageset_drift_corrected_total",
			Help: "Objects re-asserted because they drifted, counted on steady-state runs.",
		}, []string{"namespace", "name", "stage"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stageset_update_deferred_total",
			Help: "Rollouts held by a closed update window, once per deferred revision set.",
		}, []string{"namespace", "name"}),
		flux: fluxmetrics.NewRecorder(),
		certRenewal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "stageset_webhook_cert_renewal_failures_total",
			Help: "Failed attempts of the leader to check and renew the self-signed webhook certificate.",
		}),
	}
}

func init() {
	ctrlmetrics.Registry.MustRegister(defaultRecorder.collectors()...)
}

func (r *Recorder) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{r.reconciles, r.stageApplied, r.stageReady, r.drift, r.deferred, r.certRenewal},
		r.flux.Collectors()...)
}

// Default returns the recorder registered on the controller-runtime registry.
func Default() *Recorder {
	return defaultRecorder
}

// RecordReconcile counts a reconcile that ended with the Ready reason.
func (r *Recorder) RecordReconcile(namespace, name, reason string) {
	r.reconciles.WithLabelValues(namespace, name, reason).Inc()
}

// RecordStageApplied counts a stage applied and verified.
func (r *Recorder) RecordStageApplied(namespace, name, stage string) {
	r.stageApplied.WithLabelValues(namespace, name, stage).Inc()
}

// SetStageReady sets the readiness gauge of a stage.
func (r *Recorder) SetStageReady(namespace, name, stage string, ready bool) {
	v := 0.0
	if ready {
		v = 1
	}
	r.stageReady.WithLabelValues(namespace, name, stage).Set(v)
}

// RecordDriftCorrected counts objects of a stage re-asserted on a
// steady-state run.
func (r *Recorder) RecordDriftCorrected(namespace, name, stage string, objects int) {
	r.drift.WithLabelValues(namespace, name, stage).Add(float64(objects))
}

// RecordUpdateDeferred counts a rollout deferred by a closed window.
func (r *Recorder) RecordUpdateDeferred(namespace, name string) {
	r.deferred.WithLabelValues(namespace, name).Inc()
}

// WebhookCertRenewalFailures returns the counter of failed webhook
// certificate renewal attempts, which internal/webhook/certs increments.
func (r *Recorder) WebhookCertRenewalFailures() prometheus.Counter {
	return r.certRenewal
}

// DeleteStage removes the series of a stage that left the StageSet.
func (r *Recorder) DeleteStage(namespace, name, stage string) {
	r.stageApplied.DeleteLabelValues(namespace, name, stage)
	r.stageReady.DeleteLabelValues(namespace, name, stage)
	r.drift.DeleteLabelValues(namespace, name, stage)
}

// Names lists the names of the series the recorder exports, whether or not
// they have a value yet.
func (r *Recorder) Names() []string {
	ch := make(chan *prometheus.Desc, 16)
	go func() {
		for _, c := range r.collectors() {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		// A Desc tells its name only in its String form.
		if m := descName.FindStringSubmatch(d.String()); m != nil {
			names = append(names, m[1])
		}
	}
	return names
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// fluxConditions are the conditions gotk_reconcile_condition reports, as
// the Flux controllers do.
var fluxConditions = []string{meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition}

// RecordFlux records the gotk_* series of a finished reconcile of obj that
// started at start: its duration, its kstatus conditions (a condition
// absent is Unknown, as in fluxcd/pkg/runtime/controller) and whether it is
// suspended.
func (r *Recorder) RecordFlux(obj *stagesetv1.StageSet, start time.Time) {
	ref := fluxRef(obj.Namespace, obj.Name)
	r.flux.RecordDuration(ref, start)
	for _, t := range fluxConditions {
		c := conditions.Get(obj, t)
		if c == nil {
			c = conditions.UnknownCondition(t, "", "")
		}
		r.flux.RecordCondition(ref, *c)
	}
	r.flux.RecordSuspend(ref, obj.Spec.Suspend)
}

func fluxRef(namespace, name string) corev1.ObjectReference {
	return corev1.ObjectReference{Kind: stagesetv1.StageSetKind, Namespace: namespace, Name: name}
}

// Delete removes every series of a deleted StageSet, counters included.
func (r *Recorder) Delete(namespace, name string) {
	ref := fluxRef(namespace, name)
	r.flux.DeleteDuration(ref)
	r.flux.DeleteSuspend(ref)
	for _, t := range fluxConditions {
		r.flux.DeleteCondition(ref, t)
	}
	r.reconciles.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	r.stageApplied.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	r.drift.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	r.deferred.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	r.stageReady.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "stageset": name})
}
