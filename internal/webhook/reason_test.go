package webhook

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/validation"
)

// What the webhook refuses is what the reconciler, calling the same
// function, stalls on: InvalidSpec, or AccessDenied when the only problem is
// a cross-namespace reference the controller's flags refuse. What it admits
// the reconciler finds nothing wrong with.
func TestRefusalsMapToTheReconcilersReason(t *testing.T) {
	cross := validation.Options{NoCrossNamespaceRefs: true}
	cases := []struct {
		name   string
		opts   validation.Options
		mutate func(*stagesetv1.StageSet)
		want   string // the Ready reason, "" when admitted
	}{
		{"valid", validation.Options{}, func(*stagesetv1.StageSet) {}, ""},
		{"valid under --no-cross-namespace-refs", cross, func(*stagesetv1.StageSet) {}, ""},
		{"bad cron", validation.Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].Schedule = "* * *" }, stagesetv1.InvalidSpecReason},
		{"bad time zone", validation.Options{}, func(s *stagesetv1.StageSet) { s.Spec.UpdateWindows[0].TimeZone = "Nowhere" }, stagesetv1.InvalidSpecReason},
		{"health check expression", validation.Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.Stages[0].HealthCheckExprs[0].Current = "))"
		}, stagesetv1.InvalidSpecReason},
		{"readyExpr", validation.Options{}, func(s *stagesetv1.StageSet) { s.Spec.DependsOn[0].ReadyExpr = "nobody.ready" }, stagesetv1.InvalidSpecReason},
		{"action", validation.Options{}, func(s *stagesetv1.StageSet) {
			s.Spec.Stages[0].Actions.Post[0].Patch.Patch = "{}"
		}, stagesetv1.InvalidSpecReason},
		{"duration", validation.Options{}, func(s *stagesetv1.StageSet) { s.Spec.Interval = duration(-time.Second) }, stagesetv1.InvalidSpecReason},
		{"cross-namespace dependency", cross, func(s *stagesetv1.StageSet) {
			s.Spec.DependsOn[0].Namespace = "other"
		}, stagesetv1.AccessDeniedReason},
		{"cross-namespace source and a bad cron", cross, func(s *stagesetv1.StageSet) {
			s.Spec.SourceRef.Namespace = "other"
			s.Spec.UpdateWindows[0].Schedule = "* * *"
		}, stagesetv1.InvalidSpecReason},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := validStageSet("apps", "shop")
			tc.mutate(obj)
			_, admission := (&Validator{Options: tc.opts}).ValidateCreate(context.Background(), obj)
			errs := validation.StageSet(obj, tc.opts)
			if tc.want == "" {
				g.Expect(admission).NotTo(HaveOccurred())
				g.Expect(errs).To(BeEmpty())
				return
			}
			g.Expect(apierrors.IsInvalid(admission)).To(BeTrue(), "admission: %v", admission)
			g.Expect(errs).NotTo(BeEmpty())
			g.Expect(validation.Reason(errs)).To(Equal(tc.want))
		})
	}
}

// Deleting never needs a valid spec; neither does an update that leaves
// the spec alone, or only suspends or resumes it.
func TestValidatorLetsDeletesAndMetadataUpdatesThrough(t *testing.T) {
	g := NewWithT(t)
	v := &Validator{}
	bad := validStageSet("apps", "shop")
	bad.Spec.UpdateWindows[0].TimeZone = "Nowhere"
	_, err := v.ValidateDelete(context.Background(), bad)
	g.Expect(err).NotTo(HaveOccurred())

	labelled := bad.DeepCopy()
	labelled.Labels = map[string]string{"team": "shop"}
	labelled.Annotations = map[string]string{meta.ReconcileRequestAnnotation: "now"}
	_, err = v.ValidateUpdate(context.Background(), bad, labelled)
	g.Expect(err).NotTo(HaveOccurred())

	suspended := labelled.DeepCopy()
	suspended.Spec.Suspend = true
	_, err = v.ValidateUpdate(context.Background(), labelled, suspended)
	g.Expect(err).NotTo(HaveOccurred(), "suspending an invalid StageSet is let through")

	changed := suspended.DeepCopy()
	changed.Spec.Interval.Duration *= 2
	_, err = v.ValidateUpdate(context.Background(), suspended, changed)
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue())
}
