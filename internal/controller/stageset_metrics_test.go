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
				if f.GetType() == dto.MetricType_GAUGE {
					out = append(out, m.GetGauge().GetValue())
				} else {
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

	g.Expect(series(g, "stageset_reconcile_total", map[string]string{"namespace": ns, "name": "shop", "reason": "Succeeded"})).
		To(ConsistOf(BeNumerically(">=", 1)))
	g.Expect(series(g, "stageset_stage_applied_total", map[string]string{"namespace": ns, "name": "shop", "stage": "b"})).
		To(ConsistOf(1.0))
	g.Expect(series(g, "stageset_stage_ready", map[string]string{"namespace": ns, "stageset": "shop", "stage": "a"})).
		To(ConsistOf(1.0))

	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj)) }, timeout, poll).Should(BeTrue())
	for _, name := range []string{"stageset_reconcile_total", "stageset_stage_applied_total"} {
		g.Expect(series(g, name, map[string]string{"namespace": ns, "name": "shop"})).To(BeEmpty(), name)
	}
	g.Expect(series(g, "stageset_stage_ready", map[string]string{"namespace": ns, "stageset": "shop"})).To(BeEmpty())
}
