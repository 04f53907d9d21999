package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// series returns the values of a metric's series whose labels include want.
func series(g Gomega, name string, want map[string]string) []float64 {
	families, err := ctrlmetrics.Registry.Gather()
	g.Expect(err).NotTo(HaveOccurred())
	var out []float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			if hasLabels(m, want) {
				switch f.GetType() {
				case dto.MetricType_GAUGE:
					out = append(out, m.GetGauge().GetValue())
				case dto.MetricType_HISTOGRAM:
					out = append(out, float64(m.GetHistogram().GetSampleCount()))
				default:
					out = append(out, m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	found := 0
	for _, l := range m.Label {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			found++
		}
	}
	return found == len(want)
}

func TestMetricsFollowTheStageSetAndLeaveWithIt(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"a/cm.yaml": configMap("a"), "b/cm.yaml": configMap("b")})
	obj := newStageSet(ns, "shop", src, stage("a", "./a"), stage("b", "./b"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	// The run counts itself after its last status patch: Ready can be seen
	// first.
	g.Eventually(func() []float64 {
		return series(g, "stageset_reconcile_total", map[string]string{"namespace": ns, "name": "shop", "reason": "Succeeded"})
	}, timeout, poll).Should(ConsistOf(BeNumerically(">=", 1)))
	// At least once: the source's create event may start a second, steady
	// run, which applies and verifies the stage again.
	g.Expect(series(g, "stageset_stage_applied_total", map[string]string{"namespace": ns, "name": "shop", "stage": "b"})).
		To(ConsistOf(BeNumerically(">=", 1)))
	g.Expect(series(g, "stageset_stage_ready", map[string]string{"namespace": ns, "stageset": "shop", "stage": "a"})).
		To(ConsistOf(1.0))

	// The series of every Flux controller, so Flux's dashboards see StageSets.
	gotk := map[string]string{"kind": "StageSet", "namespace": ns, "name": "shop"}
	with := func(extra ...string) map[string]string {
		labels := map[string]string{}
		for k, v := range gotk {
			labels[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			labels[extra[i]] = extra[i+1]
		}
		return labels
	}
	g.Eventually(func() []float64 {
		return series(g, "gotk_reconcile_condition", with("type", "Ready", "status", "True"))
	}, timeout, poll).Should(ConsistOf(1.0))
	g.Expect(series(g, "gotk_reconcile_condition", with("type", "Stalled", "status", "True"))).To(ConsistOf(0.0))
	g.Expect(series(g, "gotk_suspend_status", gotk)).To(ConsistOf(0.0))
	g.Expect(series(g, "gotk_reconcile_duration_seconds", gotk)).To(ConsistOf(BeNumerically(">=", 1)))

	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj)) }, timeout, poll).Should(BeTrue())
	for _, name := range []string{"stageset_reconcile_total", "stageset_stage_applied_total"} {
		g.Expect(series(g, name, map[string]string{"namespace": ns, "name": "shop"})).To(BeEmpty(), name)
	}
	g.Expect(series(g, "stageset_stage_ready", map[string]string{"namespace": ns, "stageset": "shop"})).To(BeEmpty())
	for _, name := range []string{"gotk_reconcile_condition", "gotk_suspend_status", "gotk_reconcile_duration_seconds"} {
		g.Expect(series(g, name, gotk)).To(BeEmpty(), name)
	}
}
