package install

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// grafanaVariables stand for Grafana's interval variables in dashboard
// queries, which are not PromQL until Grafana substitutes them.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// knownMetrics are the series the expressions may select: those of
// docs/operations.md (with the _bucket series of its histograms),
// controller-runtime's workqueue series, Prometheus' up and the
// kube-state-metrics series of config/monitoring/kube-state-metrics.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{
		"up": true, "workqueue_adds_total": true, "workqueue_queue_duration_seconds_bucket": true,
		"gotk_resource_info": true,
	}
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\| (counter|gauge|histogram) \\|")
	for _, line := range strings.Split(string(readRepoFile(t, "docs/operations.md")), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			known[m[1]] = true
			if m[2] == "histogram" {
				known[m[1]+"_bucket"] = true
			}
		}
	}
	return known
}

// checkPromQL parses expr and checks every metric it selects is known.
func checkPromQL(t *testing.T, p parser.Parser, known map[string]bool, where, expr string) {
	t.Helper()
	e, err := p.ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && !known[vs.Name] {
			t.Errorf("%s: %q selects %q, a metric no component exports", where, expr, vs.Name)
		}
		return nil
	})
}

func TestEveryPromQLExpressionParses(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	known := knownMetrics(t)
	n := 0
	for _, r := range prometheusRules(t, mustRender(t, allToggles)) {
		checkPromQL(t, p, known, "PrometheusRule "+r.Alert+r.Record, r.Expr.String())
		n++
	}

	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readRepoFile(t, "config/monitoring/grafana/stageset-controller.json"), &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	for _, panel := range dash.Panels {
		for _, target := range panel.Targets {
			checkPromQL(t, p, known, "dashboard panel "+panel.Title, grafanaVariables.Replace(target.Expr))
			n++
		}
	}
	if n < 20 {
		t.Errorf("checked %d expressions only: rules or dashboard targets were not found", n)
	}
}
