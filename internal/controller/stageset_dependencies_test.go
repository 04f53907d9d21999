package controller

import (
	"context"
	"errors"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestDependsOnWaitsAndWakesUp(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"platform/cm.yaml": configMap("platform"), "app/cm.yaml": configMap("app"),
	})
	app := newStageSet(ns, "app", src, stage("app", "./app"))
	app.Spec.TargetNamespace = ns
	app.Spec.DependsOn = []meta.DependencyReference{{Name: "platform"}}
	create(t, app)
	eventuallyReason(t, g, app, "False/DependencyNotReady")
	g.Expect(conditions.GetMessage(app, meta.ReadyCondition)).To(ContainSubstring("platform"))
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())

	platform := newStageSet(ns, "platform", src, stage("platform", "./platform"))
	platform.Spec.TargetNamespace = ns
	platform.Spec.Suspend = true
	create(t, platform)
	eventuallyReason(t, g, platform, "False/Suspended")
	g.Consistently(readyReason(g, app), "1500ms", poll).Should(Equal("False/DependencyNotReady"))

	get(g, platform)
	platform.Spec.Suspend = false
	g.Expect(env.Client.Update(ctx, platform)).To(Succeed())
	eventuallyReason(t, g, platform, "True/Succeeded")
	eventuallyReason(t, g, app, "True/Succeeded")
}

func TestReadyExprOverridesTheBuiltInCheck(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("x")})
	dep := newStageSet(ns, "dep", src, stage("a", "./"))
	dep.Spec.Suspend = true
	create(t, dep)
	eventuallyReason(t, g, dep, "False/Suspended")

	app := newStageSet(ns, "app", src, stage("a", "./"))
	app.Spec.TargetNamespace = ns
	app.Spec.DependsOn = []meta.DependencyReference{{Name: "dep", ReadyExpr: "dep.spec.suspend == true"}}
	create(t, app)
	eventuallyReason(t, g, app, "True/Succeeded")
}

func TestDependencyCycleStalls(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("x")})
	a := newStageSet(ns, "a", src, stage("s", "./"))
	a.Spec.DependsOn = []meta.DependencyReference{{Name: "b"}}
	b := newStageSet(ns, "b", src, stage("s", "./"))
	b.Spec.DependsOn = []meta.DependencyReference{{Name: "a"}}
	create(t, a)
	create(t, b)
	for _, obj := range []*stagesetv1.StageSet{a, b} {
		eventuallyReason(t, g, obj, "False/InvalidSpec")
		g.Expect(conditions.IsStalled(obj)).To(BeTrue())
		g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("dependency cycle"))
	}
}

// Under --no-cross-namespace-refs (the suite's reconciler runs with it), a
// dependsOn entry in another namespace stalls AccessDenied, even when that
// StageSet is Ready: nothing of the other namespace is read, nothing applied.
func TestDependsOnAnotherNamespaceIsDenied(t *testing.T) {
	g := NewWithT(t)
	ns, other := env.NewNamespace(t), env.NewNamespace(t)
	otherSrc := newRepo(t, stagesetv1.GitRepositoryKind, other, "repo", "rev-1", files{"cm.yaml": configMap("platform")})
	platform := newStageSet(other, "platform", otherSrc, stage("platform", "./"))
	platform.Spec.TargetNamespace = other
	create(t, platform)
	eventuallyReason(t, g, platform, "True/Succeeded")

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("app")})
	app := newStageSet(ns, "app", src, stage("app", "./"))
	app.Spec.TargetNamespace = ns
	app.Spec.DependsOn = []meta.DependencyReference{{Name: "platform", Namespace: other}}
	create(t, app)
	eventuallyReason(t, g, app, "False/AccessDenied")
	g.Expect(conditions.IsStalled(app)).To(BeTrue())
	g.Expect(conditions.GetMessage(app, meta.ReadyCondition)).To(And(
		ContainSubstring(other+"/platform"), ContainSubstring("--no-cross-namespace-refs")))
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
}

// Without the flag, a dependency in another namespace is looked up and
// waited on like any other.
func TestDependsOnAnotherNamespaceAllowedByDefault(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, other := env.NewNamespace(t), env.NewNamespace(t)
	app := &stagesetv1.StageSet{}
	app.Namespace, app.Name = ns, "app"
	app.Spec.DependsOn = []meta.DependencyReference{{Name: "platform", Namespace: other}}

	err := (&StageSetReconciler{Client: env.Client}).checkDependencies(ctx, app)
	var runErr *runError
	g.Expect(errors.As(err, &runErr)).To(BeTrue(), "%v", err)
	g.Expect(runErr.reason).To(Equal(stagesetv1.DependencyNotReadyReason))
	g.Expect(err.Error()).To(ContainSubstring(other + "/platform"))
	// With the flag, validation refuses it before dependencies are read
	// (TestDependsOnAnotherNamespaceIsDenied).
}
