package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
