package install

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// The five alerts, in the order of docs/operations.md.
var alertNames = []string{
	"StageSetReconcileErrorsHigh",
	"StageSetControllerWorkqueueDepthHigh",
	"StageSetReconcileLatencyHigh",
	"StageSetControllerPodDown",
	"StageSetWebhookCertRenewalFailing",
}

// docAlert is a row of the alert table of docs/operations.md.
type docAlert struct{ severity, expr, forDuration string }

// operationsDocAlerts reads the alert table of docs/operations.md.
func operationsDocAlerts(t *testing.T) map[string]docAlert {
	t.Helper()
	row := regexp.MustCompile("^\\| `(StageSet\\w+)` \\| (\\w+) \\| `(.+)` \\| (\\w+) \\|$")
	out := map[string]docAlert{}
	for _, line := range strings.Split(string(readRepoFile(t, "docs/operations.md")), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			out[m[1]] = docAlert{severity: m[2], expr: strings.ReplaceAll(m[3], `\|`, "|"), forDuration: m[4]}
		}
	}
	if len(out) != len(alertNames) {
		t.Fatalf("docs/operations.md lists %d alerts, want %d", len(out), len(alertNames))
	}
	return out
}

// TestAlertsMatchOperationsDoc checks the rendered rules with default
// thresholds against the table that defines them.
func TestAlertsMatchOperationsDoc(t *testing.T) {
	doc := operationsDocAlerts(t)
	rules := prometheusRules(t, mustRender(t, "metrics: {prometheusRule: {enabled: true}}"))
	var names []string
	for _, r := range rules {
		names = append(names, r.Alert)
		want, ok := doc[r.Alert]
		if !ok {
			t.Errorf("alert %s is not in docs/operations.md", r.Alert)
			continue
		}
		if got := r.Expr.String(); got != want.expr {
			t.Errorf("%s expr\n%s\nwant (docs/operations.md)\n%s", r.Alert, got, want.expr)
		}
		if forOf(r) != want.forDuration {
			t.Errorf("%s for = %q, want %s", r.Alert, forOf(r), want.forDuration)
		}
		if r.Labels["severity"] != want.severity {
			t.Errorf("%s severity = %q, want %s", r.Alert, r.Labels["severity"], want.severity)
		}
		wantURL := defaultRunbookBase + "/" + strings.ToLower(r.Alert) + "/"
		if r.Alert == "StageSetReconcileErrorsHigh" {
			wantURL = defaultRunbookBase + "/{{ $labels.reason | toLower }}/"
		}
		if got := r.Annotations["runbook_url"]; got != wantURL {
			t.Errorf("%s runbook_url = %q, want %q", r.Alert, got, wantURL)
		}
	}
	if !slices.Equal(names, alertNames) {
		t.Errorf("alerts %v, want %v", names, alertNames)
	}
}

func TestAlertThresholdsLabelsAndExtraRules(t *testing.T) {
	m := mustRender(t, `
metrics:
  prometheusRule:
    enabled: true
    runbookBaseURL: https://runbooks.example.com/stageset/
    extraAlertLabels: {team: platform, severity: page}
    thresholds:
      reconcileErrors: {count: 5, window: 30m, for: 20m}
      workqueueDepth: {depth: 250, for: 7m}
      reconcileLatency: {p99Seconds: 600, window: 5m, for: 25m}
      podDown: {for: 2m}
      webhookCertRenewalFailures: {count: 10, window: 2h, for: 1m}
    extraRules:
    - record: stageset:reconcile_failures:rate5m
      expr: sum by (namespace) (rate(stageset_reconcile_total{reason="StageFailed"}[5m]))
`)
	want := map[string]struct{ expr, forDuration, severity string }{
		"StageSetReconcileErrorsHigh":          {`sum by (namespace, name, reason) (increase(stageset_reconcile_total{reason!~"Succeeded|Suspended|Progressing"}[30m])) >= 5`, "20m", "warning"},
		"StageSetControllerWorkqueueDepthHigh": {`sum(workqueue_depth{name="stageset"}) > 250`, "7m", "warning"},
		"StageSetReconcileLatencyHigh":         {`histogram_quantile(0.99, sum by (le) (rate(controller_runtime_reconcile_time_seconds_bucket{controller="stageset"}[5m]))) > 600`, "25m", "warning"},
		"StageSetControllerPodDown":            {`absent(up{job="stageset-controller"} == 1)`, "2m", "critical"},
		"StageSetWebhookCertRenewalFailing":    {`increase(stageset_webhook_cert_renewal_failures_total[2h]) >= 10`, "1m", "critical"},
	}
	rules := prometheusRules(t, m)
	if len(rules) != 6 {
		t.Fatalf("%d rules, want the five alerts and the extra rule", len(rules))
	}
	for _, r := range rules[:5] {
		w := want[r.Alert]
		if r.Expr.String() != w.expr || forOf(r) != w.forDuration {
			t.Errorf("%s: expr %q for %s, want %q for %s", r.Alert, r.Expr.String(), forOf(r), w.expr, w.forDuration)
		}
		// extraAlertLabels reach every alert; the alert's own severity wins.
		if r.Labels["team"] != "platform" || r.Labels["severity"] != w.severity {
			t.Errorf("%s labels %v, want team=platform and severity=%s", r.Alert, r.Labels, w.severity)
		}
		if u := r.Annotations["runbook_url"]; !strings.HasPrefix(u, "https://runbooks.example.com/stageset/") || strings.Contains(u, "stageset//") {
			t.Errorf("%s runbook_url %q does not use metrics.prometheusRule.runbookBaseURL", r.Alert, u)
		}
	}
	extra := rules[5]
	if extra.Record != "stageset:reconcile_failures:rate5m" || len(extra.Labels) != 0 {
		t.Errorf("extra rule rendered as %+v, want it as given", extra)
	}
}

// forOf returns the `for` of a rule, empty when unset.
func forOf(r monitoringv1.Rule) string {
	if r.For == nil {
		return ""
	}
	return string(*r.For)
}
