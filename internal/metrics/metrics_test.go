package metrics

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestSeriesAndTheirRemoval(t *testing.T) {
	r := newRecorder()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.collectors()...)

	r.RecordReconcile("apps", "shop", "Succeeded")
	r.RecordReconcile("apps", "shop", "Succeeded")
	r.RecordReconcile("apps", "other", "StageFailed")
	r.RecordStageApplied("apps", "shop", "db")
	r.SetStageReady("apps", "shop", "db", true)
	r.SetStageReady("apps", "shop", "web", false)
	r.RecordDriftCorrected("apps", "shop", "web", 3)
	r.RecordUpdateDeferred("apps", "shop")

	want := `
# HELP stageset_reconcile_total StageSet reconciles by terminal Ready reason.
# TYPE stageset_reconcile_total counter
stageset_reconcile_total{name="other",namespace="apps",reason="StageFailed"} 1
stageset_reconcile_total{name="shop",namespace="apps",reason="Succeeded"} 2
# HELP stageset_stage_applied_total Stages applied and verified healthy.
# TYPE stageset_stage_applied_total counter
stageset_stage_applied_total{name="shop",namespace="apps",stage="db"} 1
# HELP stageset_drift_corrected_total Objects re-asserted because they drifted, counted on steady-state runs.
# TYPE stageset_drift_corrected_total counter
stageset_drift_corrected_total{name="shop",namespace="apps",stage="web"} 3
# HELP stageset_update_deferred_total Rollouts held by a closed update window, once per deferred revision set.
# TYPE stageset_update_deferred_total counter
stageset_update_deferred_total{name="shop",namespace="apps"} 1
# HELP stageset_stage_ready 1 when the stage is Ready, else 0.
# TYPE stageset_stage_ready gauge
stageset_stage_ready{namespace="apps",stage="db",stageset="shop"} 1
stageset_stage_ready{namespace="apps",stage="web",stageset="shop"} 0
# HELP stageset_webhook_cert_renewal_failures_total Failed attempts of the leader to check and renew the self-signed webhook certificate.
# TYPE stageset_webhook_cert_renewal_failures_total counter
stageset_webhook_cert_renewal_failures_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}

	r.DeleteStage("apps", "shop", "web")
	r.Delete("apps", "shop")
	want = `
# HELP stageset_reconcile_total StageSet reconciles by terminal Ready reason.
# TYPE stageset_reconcile_total counter
stageset_reconcile_total{name="other",namespace="apps",reason="StageFailed"} 1
# HELP stageset_webhook_cert_renewal_failures_total Failed attempts of the leader to check and renew the self-signed webhook certificate.
# TYPE stageset_webhook_cert_renewal_failures_total counter
stageset_webhook_cert_renewal_failures_total 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// The gotk_* series of the Flux controllers are recorded for StageSets, and
// removed with the StageSet.
func TestFluxSeriesAndTheirRemoval(t *testing.T) {
	r := newRecorder()
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.collectors()...)

	obj := &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "shop"}}
	conditions.MarkFalse(obj, meta.ReadyCondition, stagesetv1.StageFailedReason, "boom")
	obj.Spec.Suspend = true
	r.RecordFlux(obj, time.Now().Add(-2*time.Second))

	want := `
# HELP gotk_reconcile_condition The current condition status of a GitOps Toolkit resource reconciliation.
# TYPE gotk_reconcile_condition gauge
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="False",type="Ready"} 1
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="True",type="Ready"} 0
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="Unknown",type="Ready"} 0
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="False",type="Reconciling"} 0
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="True",type="Reconciling"} 0
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="Unknown",type="Reconciling"} 1
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="False",type="Stalled"} 0
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="True",type="Stalled"} 0
gotk_reconcile_condition{kind="StageSet",name="shop",namespace="apps",status="Unknown",type="Stalled"} 1
# HELP gotk_suspend_status The current suspend status of a GitOps Toolkit resource.
# TYPE gotk_suspend_status gauge
gotk_suspend_status{kind="StageSet",name="shop",namespace="apps"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gotk_reconcile_condition", "gotk_suspend_status"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(r.flux.Collectors()[2], "gotk_reconcile_duration_seconds"); n != 1 {
		t.Fatalf("gotk_reconcile_duration_seconds has %d series, want 1", n)
	}

	r.Delete("apps", "shop")
	for _, c := range r.flux.Collectors() {
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Fatalf("%d gotk_* series left after the StageSet is gone", n)
		}
	}
}

func TestNames(t *testing.T) {
	names := newRecorder().Names()
	for _, want := range []string{"stageset_reconcile_total", "stageset_webhook_cert_renewal_failures_total", "gotk_reconcile_duration_seconds", "gotk_suspend_status"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, misses %s", names, want)
		}
	}
}
