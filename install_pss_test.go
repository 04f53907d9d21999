package main

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// restrictedViolations evaluates the Deployment's pod template against the
// latest restricted Pod Security Standard, with the checks of the API
// server's PodSecurity admission, and returns what it forbids.
func restrictedViolations(t *testing.T, dep *appsv1.Deployment) string {
	t.Helper()
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := dep.Spec.Template
	results := evaluator.EvaluatePod(api.LevelVersion{Level: api.LevelRestricted, Version: api.LatestVersion()}, &tmpl.ObjectMeta, &tmpl.Spec)
	agg := policy.AggregateCheckResults(results)
	if agg.Allowed {
		return ""
	}
	return agg.ForbiddenReason()
}

// podOf is a Pod of the Deployment's template in its namespace.
func podOf(dep *appsv1.Deployment) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: dep.Namespace, GenerateName: dep.Name + "-", Labels: dep.Spec.Template.Labels},
		Spec:       *dep.Spec.Template.Spec.DeepCopy(),
	}
}

// The controller's pod meets the restricted Pod Security Standard, and its
// namespace enforces it: the API server's PodSecurity admission admits the
// pod there. Each hardening setting the standard requires is needed: a
// copy without it is refused, by the policy library and by the API server.
func TestDeploymentMeetsTheRestrictedPodSecurityStandard(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	objs := buildConfig(t, "default")
	ns := find(t, objs, "Namespace", "stageset-system", &corev1.Namespace{})
	g.Expect(ns.Labels).To(HaveKeyWithValue(api.EnforceLevelLabel, string(api.LevelRestricted)))
	// The namespace as shipped, labels included (other tests may have
	// created it bare).
	live := &corev1.Namespace{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: ns.Name}, live); apierrors.IsNotFound(err) {
		g.Expect(env.Client.Create(ctx, ns)).To(Succeed())
	} else {
		g.Expect(err).NotTo(HaveOccurred())
		live.Labels = ns.Labels
		g.Expect(env.Client.Update(ctx, live)).To(Succeed())
	}

	dep := find(t, objs, "Deployment", "stageset-controller", &appsv1.Deployment{})
	g.Expect(restrictedViolations(t, dep)).To(BeEmpty())
	g.Expect(env.Client.Create(ctx, podOf(dep), client.DryRunAll)).To(Succeed())
	c := dep.Spec.Template.Spec.Containers[0].SecurityContext
	g.Expect(c.ReadOnlyRootFilesystem).To(Equal(ptr.To(true)), "beyond restricted: the root filesystem is read-only")

	for name, tc := range map[string]struct {
		mutate func(pod *corev1.PodSecurityContext, c *corev1.SecurityContext)
		want   string
	}{
		"privilege escalation": {func(_ *corev1.PodSecurityContext, c *corev1.SecurityContext) {
			c.AllowPrivilegeEscalation = ptr.To(true)
		}, "allowPrivilegeEscalation"},
		"may run as root": {func(p *corev1.PodSecurityContext, c *corev1.SecurityContext) {
			p.RunAsNonRoot, c.RunAsNonRoot = nil, nil
		}, "runAsNonRoot"},
		"capabilities kept": {func(_ *corev1.PodSecurityContext, c *corev1.SecurityContext) { c.Capabilities = nil }, "unrestricted capabilities"},
		"no seccomp profile": {func(p *corev1.PodSecurityContext, c *corev1.SecurityContext) {
			p.SeccompProfile, c.SeccompProfile = nil, nil
		}, "seccompProfile"},
		"privileged": {func(_ *corev1.PodSecurityContext, c *corev1.SecurityContext) {
			c.Privileged, c.AllowPrivilegeEscalation = ptr.To(true), nil
		}, "privileged"},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			dep := find(t, objs, "Deployment", "stageset-controller", &appsv1.Deployment{})
			spec := &dep.Spec.Template.Spec
			tc.mutate(spec.SecurityContext, spec.Containers[0].SecurityContext)
			g.Expect(restrictedViolations(t, dep)).To(ContainSubstring(tc.want))
			err := env.Client.Create(ctx, podOf(dep), client.DryRunAll)
			g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
			g.Expect(strings.ToLower(err.Error())).To(ContainSubstring("podsecurity"))
		})
	}
}
