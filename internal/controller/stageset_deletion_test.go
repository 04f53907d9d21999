package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestRemovedStageIsTornDown(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"a/a.yaml": configMap("a"), "b/b.yaml": configMap("b"), "c/c.yaml": configMap("c"),
	})
	obj := newStageSet(ns, "app", src, stage("a", "./a"), stage("b", "./b"), stage("c", "./c"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")
	deleted := deletionOrder(t, ns)

	updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Stages = []stagesetv1.Stage{obj.Spec.Stages[0]} })
	eventuallyReason(t, g, obj, "True/Succeeded")

	g.Expect(exists("v1", "ConfigMap", ns, "a")()).To(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "b")()).To(BeFalse())
	g.Expect(exists("v1", "ConfigMap", ns, "c")()).To(BeFalse())
	g.Expect(obj.Status.Stages).To(HaveLen(1))
	g.Eventually(deleted, timeout, poll).Should(Equal([]string{"c", "b"}), "reverse stage order")
}

func TestDeletionFollowsTheDeletionPolicy(t *testing.T) {
	cases := []struct {
		policy                string
		keepPruned, keepOther bool
	}{
		{stagesetv1.DeletionPolicyMirrorPrune, false, true},
		{stagesetv1.DeletionPolicyDelete, false, false},
		{stagesetv1.DeletionPolicyOrphan, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.policy, func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			ns := env.NewNamespace(t)
			src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
				"pruned/cm.yaml": configMap("pruned"), "kept/cm.yaml": configMap("kept"),
			})
			kept := stage("kept", "./kept")
			kept.Prune = new(bool)
			obj := newStageSet(ns, "app", src, stage("pruned", "./pruned"), kept)
			obj.Spec.TargetNamespace = ns
			obj.Spec.DeletionPolicy = tc.policy
			create(t, obj)
			eventuallyReason(t, g, obj, "True/Succeeded")
			g.Expect(obj.Finalizers).To(ContainElement(stagesetv1.StageSetFinalizer))

			deleted := deletionOrder(t, ns)
			g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
			g.Eventually(func() bool {
				return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj))
			}, timeout, poll).Should(BeTrue())
			g.Expect(exists("v1", "ConfigMap", ns, "pruned")()).To(Equal(tc.keepPruned))
			g.Expect(exists("v1", "ConfigMap", ns, "kept")()).To(Equal(tc.keepOther))
			if tc.policy == stagesetv1.DeletionPolicyDelete {
				g.Eventually(deleted, timeout, poll).Should(Equal([]string{"kept", "pruned"}), "reverse stage order")
			}
		})
	}
}

func TestTeardownSparesObjectsThatChangedOwner(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("shared")})
	obj := newStageSet(ns, "first", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	// Another StageSet takes the object over: its labels now point there.
	second := newStageSet(ns, "second", src, stage("a", "./"))
	second.Spec.TargetNamespace = ns
	create(t, second)
	eventuallyReason(t, g, second, "True/Succeeded")

	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj)) }, timeout, poll).Should(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "shared")()).To(BeTrue(), "owned by second now")
}

// A deletion whose identity is gone (here the service account's RBAC, as
// during a namespace deletion) gives up the teardown after a bounded retry,
// says so in a Warning event naming what stays, and removes its finalizer
// instead of hanging for ever.
func TestDeletionGivesUpWhenTheIdentityIsGone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	grantConfigMaps(t, ns, "deployer")
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("cm")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.ServiceAccountName = "deployer"
	obj.Spec.RetryInterval = &metav1.Duration{Duration: time.Second}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	g.Expect(env.Client.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "deployer"}})).To(Succeed())
	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())

	g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), &stagesetv1.StageSet{}))
	}, timeout, poll).Should(BeTrue(), "the finalizer gives up")
	abandoned := eventsWithReason(ns, "app", stagesetv1.TeardownAbandonedReason)
	g.Expect(abandoned).To(HaveLen(1))
	g.Expect(abandoned[0].Severity).To(Equal("error"))
	g.Expect(abandoned[0].Message).To(ContainSubstring("forbidden"))
	g.Expect(abandoned[0].Message).To(ContainSubstring(ns + "_cm__ConfigMap"))
	g.Expect(exists("v1", "ConfigMap", ns, "cm")()).To(BeTrue(), "what could not be deleted stays")
}

// A StageSet gone by any path (here: without the finalizer's teardown, as
// when its finalizer was removed by hand) leaves nothing in the
// controller's memory: its builds are dropped when a reconcile finds it gone.
func TestGoneStageSetIsForgotten(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	reconciler.Builds.Put(buildCachePrefix(ns, "gone")+"a", "fp", nil)
	g.Expect(reconciler.Builds.Holds(buildCachePrefix(ns, "gone"))).To(BeTrue())
	_, err := reconciler.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "gone"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reconciler.Builds.Holds(buildCachePrefix(ns, "gone"))).To(BeFalse())
}

// A stage last applied with prune: false keeps its objects when it leaves
// the spec, as prune: false keeps the objects that leave a stage: at the
// end of the next run, and when the StageSet is deleted (MirrorPrune)
// before a run got that far.
func TestRemovedStageWithPruneDisabledKeepsItsObjects(t *testing.T) {
	setup := func(t *testing.T, g Gomega) (string, *stagesetv1.StageSet) {
		ns := env.NewNamespace(t)
		src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
			"a/a.yaml": configMap("a"), "kept/cm.yaml": configMap("kept"), "pruned/cm.yaml": configMap("pruned"),
		})
		kept := stage("kept", "./kept")
		kept.Prune = new(bool)
		obj := newStageSet(ns, "app", src, stage("a", "./a"), kept, stage("pruned", "./pruned"))
		obj.Spec.TargetNamespace = ns
		create(t, obj)
		eventuallyReason(t, g, obj, "True/Succeeded")
		g.Expect(obj.Status.Stages[1].PruneDisabled).To(BeTrue())
		g.Expect(obj.Status.Stages[2].PruneDisabled).To(BeFalse())
		return ns, obj
	}

	t.Run("removed", func(t *testing.T) {
		g := NewWithT(t)
		ns, obj := setup(t, g)
		updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Stages = obj.Spec.Stages[:1] })
		g.Eventually(func() int { get(g, obj); return len(obj.Status.Stages) }, timeout, poll).Should(Equal(1))
		eventuallyReason(t, g, obj, "True/Succeeded")
		g.Expect(exists("v1", "ConfigMap", ns, "pruned")()).To(BeFalse())
		g.Expect(exists("v1", "ConfigMap", ns, "kept")()).To(BeTrue(), "its stage had prune: false")
	})

	t.Run("status written before the field", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		ns, obj := setup(t, g)
		// As an older controller wrote it; any run records the setting
		// again, a steady one too.
		g.Eventually(func() error {
			get(g, obj)
			for i := range obj.Status.Stages {
				obj.Status.Stages[i].PruneDisabled = false
			}
			return env.Client.Status().Update(ctx, obj)
		}, timeout, poll).Should(Succeed())
		requestReconcile(g, obj, "after-upgrade")
		g.Expect(obj.Status.Stages[1].PruneDisabled).To(BeTrue())

		updateSpec(g, obj, func(obj *stagesetv1.StageSet) { obj.Spec.Stages = obj.Spec.Stages[:1] })
		g.Eventually(func() int { get(g, obj); return len(obj.Status.Stages) }, timeout, poll).Should(Equal(1))
		g.Expect(exists("v1", "ConfigMap", ns, "kept")()).To(BeTrue(), "its stage had prune: false")
	})

	t.Run("deleted before the removal ran", func(t *testing.T) {
		g := NewWithT(t)
		ctx := context.Background()
		ns, obj := setup(t, g)
		// The run that would tear the removed stages down fails first.
		updateSpec(g, obj, func(obj *stagesetv1.StageSet) {
			obj.Spec.Stages = obj.Spec.Stages[:1]
			obj.Spec.Stages[0].Path = "./missing"
		})
		eventuallyReason(t, g, obj, "False/BuildFailed")
		g.Expect(obj.Status.Stages).To(HaveLen(3))

		g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
		g.Eventually(func() bool { return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj)) }, timeout, poll).Should(BeTrue())
		g.Expect(exists("v1", "ConfigMap", ns, "a")()).To(BeFalse())
		g.Expect(exists("v1", "ConfigMap", ns, "pruned")()).To(BeFalse())
		g.Expect(exists("v1", "ConfigMap", ns, "kept")()).To(BeTrue(), "its stage had prune: false")
	})
}

// held is a ConfigMap a finalizer keeps terminating once deleted, as an
// operator's custom resource is until the operator has cleaned up.
const heldFinalizer = "test.stageset.io/hold"

func heldConfigMap(name string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  finalizers: [%s]\ndata:\n  k: v\n", name, heldFinalizer)
}

// release removes the finalizer of a held ConfigMap.
func release(g Gomega, ns, name string) {
	cm := configMapObj(ns, name)
	if err := env.Client.Get(context.Background(), objKey(cm), cm); apierrors.IsNotFound(err) {
		return
	}
	patch := client.MergeFrom(cm.DeepCopy())
	cm.Finalizers = nil
	g.Expect(env.Client.Patch(context.Background(), cm, patch)).To(Succeed())
}

// operatorStageSet creates a Ready StageSet "app" whose stage "operator"
// applies ConfigMap "operator" and whose stage "app", of the timeout,
// applies ConfigMap "resource" held by a finalizer once deleted.
func operatorStageSet(t *testing.T, g Gomega, appTimeout time.Duration) (string, *stagesetv1.StageSet) {
	t.Helper()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"operator/cm.yaml": configMap("operator"), "app/cm.yaml": heldConfigMap("resource"),
	})
	app := stage("app", "./app")
	app.Timeout = &metav1.Duration{Duration: appTimeout}
	obj := newStageSet(ns, "app", src, stage("operator", "./operator"), app)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	t.Cleanup(func() { release(NewWithT(t), ns, "resource") })
	eventuallyReason(t, g, obj, "True/Succeeded")
	return ns, obj
}

// A stage is torn down once the stage after it is gone, not merely deleted:
// an operator stage outlives the custom resources whose finalizers it must
// remove. The StageSet says what it waits for.
func TestDeletionWaitsForEachStageToBeGone(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	// The test ends the wait, not the timeout.
	ns, obj := operatorStageSet(t, g, 10*time.Minute)

	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() string { get(g, obj); return conditions.GetMessage(obj, meta.ReadyCondition) }, timeout, poll).
		Should(Equal(fmt.Sprintf(`tearing down stage "app": waiting for 1 objects to be deleted: ConfigMap/%s/resource`, ns)))
	g.Expect(conditions.GetReason(obj, meta.ReadyCondition)).To(Equal(meta.ProgressingReason))
	g.Consistently(exists("v1", "ConfigMap", ns, "operator"), 2*time.Second, poll).Should(BeTrue(), "the stage before waits")

	release(g, ns, "resource")
	g.Eventually(func() bool { return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj)) }, timeout, poll).Should(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "operator")()).To(BeFalse())
	g.Expect(eventsWithReason(ns, "app", stagesetv1.TeardownTimeoutReason)).To(BeEmpty())
}

// The wait lasts the stage's timeout at most: then a Warning event names
// what still terminates, and the stages before it are torn down anyway.
func TestDeletionStopsWaitingAtTheStageTimeout(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, obj := operatorStageSet(t, g, 2*time.Second)

	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool { return apierrors.IsNotFound(env.Client.Get(ctx, objKey(obj), obj)) }, timeout, poll).Should(BeTrue())
	g.Expect(exists("v1", "ConfigMap", ns, "operator")()).To(BeFalse())
	g.Expect(exists("v1", "ConfigMap", ns, "resource")()).To(BeTrue(), "still held by its finalizer")
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.TeardownTimeoutReason) }, timeout, poll).Should(HaveLen(1))
	g.Expect(eventsWithReason(ns, "app", stagesetv1.TeardownTimeoutReason)[0].Message).To(Equal(fmt.Sprintf(
		`Stage "app": 1 objects still terminating 2s after their deletion (finalizers): tearing down the stages before it anyway; left: ConfigMap/%s/resource`, ns)))
}

// A message names ten objects at most, and counts the others.
func TestFirstNames(t *testing.T) {
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("o%d", i))
	}
	if got, want := firstNames(names[:10]), "o0, o1, o2, o3, o4, o5, o6, o7, o8, o9"; got != want {
		t.Errorf("ten names: %q, want %q", got, want)
	}
	if got, want := firstNames(names), "o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, and 2 more"; got != want {
		t.Errorf("twelve names: %q, want %q", got, want)
	}
	if names[10] != "o10" {
		t.Errorf("the caller's list changed: %q", names[10])
	}
}
