package install

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// These tests evaluate the chart's PrometheusRule with the Prometheus rules
// engine in-process, as `promtool test rules` does: series are loaded at a
// 1m step, every rule group is evaluated each minute, and the alerts firing
// at given minutes are compared.

// chartRuleValues renders the alerts with default thresholds and an extra
// label, as an install with the PrometheusRule on does.
const chartRuleValues = "metrics: {prometheusRule: {enabled: true, extraAlertLabels: {team: platform}}}"

// firing is an alert in state firing.
type firing struct {
	labels, annotations map[string]string
}

// evalAlerts loads series (promtool's `load 1m` syntax, one per line),
// evaluates the rendered rules every minute up to the last of atMinutes and
// returns the alerts firing at each of atMinutes.
func evalAlerts(t *testing.T, series string, atMinutes ...int) map[int][]firing {
	t.Helper()
	rulesFile := writeRuleFile(t, chartRuleValues)

	var load strings.Builder
	load.WriteString("load 1m\n")
	for line := range strings.SplitSeq(strings.TrimSpace(series), "\n") {
		load.WriteString("  " + strings.TrimSpace(line) + "\n")
	}
	p := parser.NewParser(parser.Options{})
	suite, err := promqltest.NewLazyLoader(load.String(), promqltest.LazyLoaderOpts{
		EnableAtModifier: true, EnableNegativeOffset: true, StartTime: time.Unix(0, 0).UTC(), Parser: p,
	})
	if err != nil {
		t.Fatalf("loading series: %v", err)
	}
	t.Cleanup(func() { _ = suite.Close() })

	mgr := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(suite.QueryEngine(), suite.Storage()),
		AppendableV2: suite.Storage(),
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       promslog.NewNopLogger(),
		Parser:       p,
	})
	groups, errs := mgr.LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, rulesFile)
	if len(errs) > 0 {
		t.Fatalf("loading the chart's rules: %v", errs)
	}
	for _, g := range groups {
		for _, r := range g.Rules() {
			if ar, ok := r.(*rules.AlertingRule); ok {
				ar.SetRestored(true)
			}
		}
	}

	out := map[int][]firing{}
	start := time.Unix(0, 0).UTC()
	for minute := 0; minute <= slices.Max(atMinutes); minute++ {
		ts := start.Add(time.Duration(minute) * time.Minute)
		suite.WithSamplesTill(ts, func(err error) {
			if err != nil {
				t.Fatalf("appending samples: %v", err)
			}
			for _, g := range groups {
				g.Eval(suite.Context(), ts)
				for _, r := range g.Rules() {
					if err := r.LastError(); err != nil {
						t.Fatalf("rule %s at %dm: %v", r.Name(), minute, err)
					}
				}
			}
		})
		if !slices.Contains(atMinutes, minute) {
			continue
		}
		out[minute] = []firing{}
		for _, g := range groups {
			for _, r := range g.Rules() {
				ar, ok := r.(*rules.AlertingRule)
				if !ok {
					continue
				}
				for _, a := range ar.ActiveAlerts() {
					if a.State == rules.StateFiring {
						out[minute] = append(out[minute], firing{labels: a.Labels.Map(), annotations: a.Annotations.Map()})
					}
				}
			}
		}
	}
	return out
}

// writeRuleFile renders the chart and writes the groups of its
// PrometheusRule as a Prometheus rule file, as the Prometheus Operator does.
func writeRuleFile(t *testing.T, vals string) string {
	t.Helper()
	m := mustRender(t, vals)
	spec, _, err := unstructured.NestedMap(m.one(t, "PrometheusRule", "stageset-controller").Object, "spec")
	if err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// alertsNamed returns the firing alerts of one name.
func alertsNamed(fs []firing, name string) []firing {
	var out []firing
	for _, f := range fs {
		if f.labels["alertname"] == name {
			out = append(out, f)
		}
	}
	return out
}

func TestReconcileErrorsAlertFiresForStageFailedOnly(t *testing.T) {
	// One reconcile a minute for an hour each: a StageSet stuck in
	// StageFailed, a healthy one, a suspended one, and one that is rolling
	// out (Progressing).
	got := evalAlerts(t, `
stageset_reconcile_total{namespace="apps", name="shop", reason="StageFailed"} 0+1x60
stageset_reconcile_total{namespace="apps", name="web", reason="Succeeded"} 0+1x60
stageset_reconcile_total{namespace="apps", name="paused", reason="Suspended"} 0+1x60
stageset_reconcile_total{namespace="apps", name="rolling", reason="Progressing"} 0+1x60
`, 10, 40)

	if a := alertsNamed(got[10], "StageSetReconcileErrorsHigh"); len(a) != 0 {
		t.Errorf("fired before being held for 15m: %v", a)
	}
	a := alertsNamed(got[40], "StageSetReconcileErrorsHigh")
	if len(a) != 1 {
		t.Fatalf("firing at 40m: %v, want one alert for apps/shop", a)
	}
	want := map[string]string{
		"alertname": "StageSetReconcileErrorsHigh", "namespace": "apps", "name": "shop",
		"reason": "StageFailed", "severity": "warning", "team": "platform",
	}
	if fmt.Sprint(a[0].labels) != fmt.Sprint(want) {
		t.Errorf("labels %v, want %v", a[0].labels, want)
	}
	if u := a[0].annotations["runbook_url"]; u != defaultRunbookBase+"/stagefailed/" {
		t.Errorf("runbook_url = %q, want %s/stagefailed/", u, defaultRunbookBase)
	}
	if s := a[0].annotations["summary"]; !strings.Contains(s, "apps/shop") || !strings.Contains(s, "StageFailed") {
		t.Errorf("summary %q does not name the StageSet and its reason", s)
	}
}

func TestPodDownAlert(t *testing.T) {
	// Up for 10 minutes, then scraped as down.
	got := evalAlerts(t, `up{job="stageset-controller", instance="10.0.0.1:8080"} 1x10 0x30`, 10, 14, 20)
	if a := alertsNamed(got[10], "StageSetControllerPodDown"); len(a) != 0 {
		t.Errorf("fired while up: %v", a)
	}
	if a := alertsNamed(got[14], "StageSetControllerPodDown"); len(a) != 0 {
		t.Errorf("fired before being down for 5m: %v", a)
	}
	a := alertsNamed(got[20], "StageSetControllerPodDown")
	if len(a) != 1 || a[0].labels["severity"] != "critical" ||
		a[0].annotations["runbook_url"] != defaultRunbookBase+"/stagesetcontrollerpoddown/" {
		t.Errorf("firing at 20m: %v, want the critical pod-down alert", a)
	}

	// No target at all (the pod never started, or is not scraped): absent.
	got = evalAlerts(t, `up{job="other", instance="10.0.0.2:8080"} 1x30`, 10)
	if a := alertsNamed(got[10], "StageSetControllerPodDown"); len(a) != 1 {
		t.Errorf("no stageset-controller target: firing %v, want the pod-down alert", a)
	}
}

func TestWebhookCertRenewalAlert(t *testing.T) {
	// The leader retries a failed renewal with backoff: a failure a minute
	// from minute 6 on.
	got := evalAlerts(t, `stageset_webhook_cert_renewal_failures_total{pod="a"} 0x5 1+1x20`, 6, 9)
	if a := alertsNamed(got[6], "StageSetWebhookCertRenewalFailing"); len(a) != 0 {
		t.Errorf("fired after two failures: %v", a)
	}
	a := alertsNamed(got[9], "StageSetWebhookCertRenewalFailing")
	if len(a) != 1 || a[0].labels["severity"] != "critical" ||
		a[0].annotations["runbook_url"] != defaultRunbookBase+"/stagesetwebhookcertrenewalfailing/" {
		t.Errorf("firing at 9m: %v, want the critical renewal alert", a)
	}
}

func TestWorkqueueAndLatencyAlerts(t *testing.T) {
	// 150 StageSets waiting from minute 5; every reconcile between 300s and
	// 600s from the start.
	got := evalAlerts(t, `
workqueue_depth{name="stageset"} 0x4 150x40
workqueue_depth{name="other"} 1000x45
controller_runtime_reconcile_time_seconds_bucket{controller="stageset", le="60"} 0x45
controller_runtime_reconcile_time_seconds_bucket{controller="stageset", le="300"} 0x45
controller_runtime_reconcile_time_seconds_bucket{controller="stageset", le="600"} 0+10x45
controller_runtime_reconcile_time_seconds_bucket{controller="stageset", le="+Inf"} 0+10x45
`, 12, 30)
	if a := alertsNamed(got[12], "StageSetControllerWorkqueueDepthHigh"); len(a) != 0 {
		t.Errorf("workqueue alert fired before 10m: %v", a)
	}
	if a := alertsNamed(got[30], "StageSetControllerWorkqueueDepthHigh"); len(a) != 1 {
		t.Errorf("workqueue alert at 30m: %v, want one", a)
	}
	if a := alertsNamed(got[12], "StageSetReconcileLatencyHigh"); len(a) != 0 {
		t.Errorf("latency alert fired before 15m: %v", a)
	}
	if a := alertsNamed(got[30], "StageSetReconcileLatencyHigh"); len(a) != 1 {
		t.Errorf("latency alert at 30m: %v, want one", a)
	}
}
