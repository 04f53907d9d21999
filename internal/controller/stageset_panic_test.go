package controller

import (
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// A panic during a run ends it Ready=False with the panic's message and a
// Warning event (SPEC §11), not with a status stuck at Reconciling; the run
// is retried and succeeds once the panic is gone.
func TestPanicIsReportedAsReadyFalse(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	panicClock.Store(true)
	t.Cleanup(func() { panicClock.Store(false) })

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm", "v", "1")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RetryInterval = &metav1.Duration{Duration: time.Second}
	// An always open window: the gate reads the (panicking) clock.
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowAllow, Schedule: "* * * * *", Duration: metav1.Duration{Duration: time.Hour},
	}}
	create(t, obj)

	eventuallyReason(t, g, obj, "False/"+stagesetv1.ReconciliationFailedReason)
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(HavePrefix("internal error: reconcile panicked: the test clock panicked (runbook: "))
	g.Expect(conditions.Has(obj, meta.ReconcilingCondition)).To(BeFalse(), "no status stuck at Reconciling")
	g.Eventually(func() int { return len(eventsWithReason(ns, "app", stagesetv1.ReconciliationFailedReason)) }, timeout, poll).Should(Equal(1))
	g.Expect(exists("v1", "ConfigMap", ns, "cm")()).To(BeFalse())

	panicClock.Store(false)
	eventuallyReason(t, g, obj, "True/Succeeded")
	// Retried runs that panic the same way report it once, not per retry.
	g.Expect(eventsWithReason(ns, "app", stagesetv1.ReconciliationFailedReason)).To(HaveLen(1))
}
