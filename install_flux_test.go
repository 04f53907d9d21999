package main

import (
	"context"
	"path/filepath"
	"testing"

	notificationv1 "github.com/fluxcd/notification-controller/api/v1"
	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
	"github.com/stageset/stageset-controller/internal/validation"
)

// notificationCRDs are notification-controller's CRDs as generated from its
// pinned API module into config/testdata/crds (`make generate`), the ones a
// Flux install ships in gotk-components.yaml.
var notificationCRDs = []string{"notification.toolkit.fluxcd.io_alerts.yaml", "notification.toolkit.fluxcd.io_receivers.yaml"}

// buildFluxSystem builds what the kustomization.yaml of a `flux bootstrap`
// repository's flux-system folder would with config/flux among its
// components: notification-controller's CRDs patched, and config/flux's
// RBAC.
func buildFluxSystem(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	root := testenv.RepoRoot()
	dir := t.TempDir()
	// kustomize loads relative paths only.
	rel := func(path ...string) string {
		r, err := filepath.Rel(dir, filepath.Join(append([]string{root, "config"}, path...)...))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	kustomization := "resources:\n"
	for _, crd := range notificationCRDs {
		kustomization += "- " + rel("testdata", "crds", crd) + "\n"
	}
	kustomization += "components:\n- " + rel("flux") + "\n"
	return kustomizeIn(t, dir, kustomization)
}

// installCRD replaces the spec of the installed CRD with crd's until the
// test ends, when the original is put back.
func installCRD(t *testing.T, crd *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	live := &apiextensionsv1.CustomResourceDefinition{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: crd.GetName()}, live); err != nil {
		t.Fatal(err)
	}
	original := live.Spec.DeepCopy()
	want := &apiextensionsv1.CustomResourceDefinition{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(crd.Object, want); err != nil {
		t.Fatal(err)
	}
	live.Spec = want.Spec
	if err := env.Client.Update(ctx, live); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Client.Get(ctx, client.ObjectKey{Name: crd.GetName()}, live); err == nil {
			live.Spec = *original
			_ = env.Client.Update(ctx, live)
		}
	})
}

// stageSetReceiver is a Receiver that asks StageSets of ns for a reconcile.
func stageSetReceiver(ns string) *unstructured.Unstructured {
	r := &notificationv1.Receiver{
		TypeMeta:   metav1.TypeMeta{APIVersion: notificationv1.GroupVersion.String(), Kind: notificationv1.ReceiverKind},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "stagesets"},
		Spec: notificationv1.ReceiverSpec{
			Type: notificationv1.GenericReceiver,
			Resources: []notificationv1.ReceiverResource{{CrossNamespaceObjectReference: notificationv1.CrossNamespaceObjectReference{
				APIVersion: stagesetv1.GroupVersion.String(), Kind: stagesetv1.StageSetKind, Name: "*",
			}}},
			SecretRef: &meta.LocalObjectReference{Name: "receiver-token"},
		},
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(r)
	if err != nil {
		panic(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// Flux's notification-controller refuses Alerts and Receivers on StageSets
// until config/flux patches its CRDs; with the patch, the example of
// config/flux/example (Provider, Alert, GitRepository, StageSet) applies,
// and its StageSet passes the controller's admission rules. The RBAC of
// config/flux lets notification-controller's ServiceAccount do what a
// Receiver does to StageSets, which it cannot without it.
func TestFluxComponentLetsNotificationControllerUseStageSets(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	example := buildConfig(t, "flux/example")
	g.Expect(example).NotTo(BeEmpty())
	alert := find(t, example, notificationv1.AlertKind, "stagesets", &unstructured.Unstructured{})
	g.Expect(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: alert.GetNamespace()}})).
		To(Or(Succeed(), Satisfy(apierrors.IsAlreadyExists)))

	// The CRDs as Flux ships them refuse the kind.
	g.Expect(applyDryRun(ctx, alert)).To(MatchError(ContainSubstring(`Unsupported value: "StageSet"`)))
	g.Expect(applyDryRun(ctx, stageSetReceiver(alert.GetNamespace()))).To(MatchError(ContainSubstring(`Unsupported value: "StageSet"`)))

	fluxSystem := buildFluxSystem(t)
	for _, obj := range fluxSystem {
		if obj.GetKind() == "CustomResourceDefinition" {
			installCRD(t, obj)
		}
	}
	// Every served version of the Alert CRD accepts the kind: the patch
	// addressed each by index.
	crd := find(t, fluxSystem, "CustomResourceDefinition", "alerts.notification.toolkit.fluxcd.io", &apiextensionsv1.CustomResourceDefinition{})
	g.Expect(crd.Spec.Versions).To(HaveLen(2))
	for _, v := range crd.Spec.Versions {
		alert := alert.DeepCopy()
		alert.SetAPIVersion(notificationv1.GroupVersion.Group + "/" + v.Name)
		g.Eventually(func() error { return applyDryRun(ctx, alert) }, testenv.Timeout, testenv.Poll).Should(Succeed(), v.Name)
	}
	g.Eventually(func() error { return applyDryRun(ctx, stageSetReceiver(alert.GetNamespace())) }, testenv.Timeout, testenv.Poll).Should(Succeed())
	applyAll(t, example)

	stageSet := find(t, example, stagesetv1.StageSetKind, "shop", &stagesetv1.StageSet{})
	g.Expect(validation.StageSet(stageSet, validation.Options{NoCrossNamespaceRefs: true})).To(BeEmpty())

	// notification-controller's identity, before and after config/flux's
	// RBAC: it gets, lists and patches StageSets as a Receiver does.
	g.Expect(env.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "flux-system", Name: "notification-controller"}})).
		To(Or(Succeed(), Satisfy(apierrors.IsAlreadyExists)))
	ns := env.NewNamespace(t)
	target := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: stageSet.Spec.Interval.Duration},
			SourceRef: stageSet.Spec.SourceRef,
			Stages:    stageSet.Spec.Stages,
		},
	}
	g.Expect(env.Client.Create(ctx, target)).To(Succeed())
	asNotificationController := rest.CopyConfig(env.Config)
	asNotificationController.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:flux-system:notification-controller"}
	nc, err := client.New(asNotificationController, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())
	receive := func() error {
		if err := nc.List(ctx, &stagesetv1.StageSetList{}, client.InNamespace(ns)); err != nil {
			return err
		}
		obj := &stagesetv1.StageSet{}
		if err := nc.Get(ctx, client.ObjectKeyFromObject(target), obj); err != nil {
			return err
		}
		patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+meta.ReconcileRequestAnnotation+`":"receiver"}}}`))
		return nc.Patch(ctx, obj, patch)
	}
	g.Expect(apierrors.IsForbidden(receive())).To(BeTrue(), "notification-controller's own rights do not cover StageSets")
	for _, obj := range fluxSystem {
		if obj.GetKind() == "ClusterRole" || obj.GetKind() == "ClusterRoleBinding" {
			createOrKeep(t, obj)
		}
	}
	g.Eventually(receive, testenv.Timeout, testenv.Poll).Should(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(target), target)).To(Succeed())
	g.Expect(target.Annotations).To(HaveKeyWithValue(meta.ReconcileRequestAnnotation, "receiver"))
}
