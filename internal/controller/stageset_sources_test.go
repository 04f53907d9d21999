package controller

import (
	"context"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestEverySourceKindRollsOut(t *testing.T) {
	for _, kind := range []string{
		stagesetv1.GitRepositoryKind, stagesetv1.OCIRepositoryKind,
		stagesetv1.BucketKind, stagesetv1.ExternalArtifactKind,
	} {
		t.Run(kind, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			src := newRepo(t, kind, ns, "src", "rev-1", files{"cm.yaml": configMap("from-" + ns)})
			obj := newStageSet(ns, "app", src, stage("only", "./"))
			obj.Spec.TargetNamespace = ns
			create(t, obj)
			eventuallyReason(t, g, obj, "True/Succeeded")
			g.Expect(exists("v1", "ConfigMap", ns, "from-"+ns)()).To(BeTrue())
			g.Expect(obj.Status.LastAppliedRevisions).To(HaveKeyWithValue(kind+"/"+ns+"/src", "rev-1"))
		})
	}
}

func TestStagesCanUseTheirOwnSources(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	git := newRepo(t, stagesetv1.GitRepositoryKind, ns, "platform", "main@sha1:aaaa", files{"crds/cm.yaml": configMap("platform")})
	oci := newRepo(t, stagesetv1.OCIRepositoryKind, ns, "app", "v1.2.3@sha256:bbbb", files{"cm.yaml": configMap("app")})
	appStage := stage("app", "./")
	appStage.SourceRef = oci.ref()
	obj := newStageSet(ns, "shop", git, stage("platform", "./crds"), appStage)
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("main@sha1:aaaa"), "the revision of spec.sourceRef")
	g.Expect(obj.Status.LastAppliedRevisions).To(Equal(map[string]string{
		"GitRepository/" + ns + "/platform": "main@sha1:aaaa",
		"OCIRepository/" + ns + "/app":      "v1.2.3@sha256:bbbb",
	}))
	g.Expect(obj.Status.Stages[1].Revision).To(Equal("v1.2.3@sha256:bbbb"))
}

func TestNewRevisionRollsOutAndPrunes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"a/keep.yaml": configMap("keep", "v", "1"),
		"a/gone.yaml": configMap("gone"),
		"b/b.yaml":    configMap("b"),
	})
	noPrune := stage("b", "./b")
	noPrune.Prune = new(bool)
	obj := newStageSet(ns, "app", src, stage("a", "./a"), noPrune)
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	src.publish("rev-2", files{
		"a/keep.yaml": configMap("keep", "v", "2"),
		"b/new.yaml":  configMap("b-new"),
	})
	g.Eventually(func() string { get(g, obj); return obj.Status.LastAppliedRevision }, timeout, poll).Should(Equal("rev-2"))
	eventuallyReason(t, g, obj, "True/Succeeded")

	cm := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "keep"}, cm)).To(Succeed())
	g.Expect(cm.Data).To(HaveKeyWithValue("v", "2"))
	g.Expect(exists("v1", "ConfigMap", ns, "gone")()).To(BeFalse(), "pruned: it left stage a")
	g.Expect(exists("v1", "ConfigMap", ns, "b")()).To(BeTrue(), "stage b does not prune")
	g.Expect(exists("v1", "ConfigMap", ns, "b-new")()).To(BeTrue())
	g.Expect(obj.Status.History).To(HaveLen(2))
	g.Expect(obj.Status.History[0].Revisions).To(HaveKeyWithValue("GitRepository/"+ns+"/repo", "rev-2"))
}

func TestMissingSourceWaitsThenRollsOut(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	obj := newStageSet(ns, "app", &repo{kind: stagesetv1.GitRepositoryKind, name: "later"}, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)
	eventuallyReason(t, g, obj, "False/SourceNotReady")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("later"))
	g.Expect(conditions.Has(obj, meta.StalledCondition)).To(BeFalse(), "waiting is not stalling")

	newRepo(t, stagesetv1.GitRepositoryKind, ns, "later", "rev-1", files{"cm.yaml": configMap("late")})
	eventuallyReason(t, g, obj, "True/Succeeded")
}
