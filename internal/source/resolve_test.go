package source

import (
	"context"
	"errors"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func sourceRef(kind, namespace, name string) stagesetv1.SourceReference {
	return stagesetv1.SourceReference{APIVersion: stagesetv1.SourceAPIVersion, Kind: kind, Name: name, Namespace: namespace}
}

// unservedArtifact is an artifact as a source reports it, for tests that
// never download it.
func unservedArtifact() *meta.Artifact {
	return &meta.Artifact{
		Path: "x.tar.gz", URL: env.Artifacts.URL("x.tar.gz"), Revision: "main@sha1:1",
		Digest: "sha256:00", LastUpdateTime: metav1.Now(),
	}
}

func TestResolveEveryKind(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	r := &Resolver{Reader: env.Client}

	for _, kind := range []string{
		stagesetv1.GitRepositoryKind, stagesetv1.OCIRepositoryKind,
		stagesetv1.BucketKind, stagesetv1.ExternalArtifactKind,
	} {
		t.Run(kind, func(t *testing.T) {
			g := NewWithT(t)
			artifact, err := env.Artifacts.Publish(ns+"/"+kind+".tar.gz", "main@sha1:"+kind, map[string]string{"a.yaml": kind})
			g.Expect(err).NotTo(HaveOccurred())
			_, err = env.CreateSource(ctx, kind, ns, "src", artifact)
			g.Expect(err).NotTo(HaveOccurred())

			got, err := r.Resolve(ctx, ns, sourceRef(kind, ns, "src"))
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got.Ref).To(Equal(sourceRef(kind, ns, "src")))
			g.Expect(got.Artifact.Revision).To(Equal(artifact.Revision))
			g.Expect(got.Artifact.Digest).To(Equal(artifact.Digest))
			g.Expect(got.Artifact.URL).To(Equal(artifact.URL))
		})
	}
}

func TestResolveDefaultsTheReference(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	_, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, "shop", unservedArtifact())
	g.Expect(err).NotTo(HaveOccurred())

	got, err := (&Resolver{Reader: env.Client}).Resolve(ctx, ns, stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "shop"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.Ref).To(Equal(sourceRef(stagesetv1.GitRepositoryKind, ns, "shop")))
}

func TestResolveNotReady(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	r := &Resolver{Reader: env.Client}
	artifact := unservedArtifact()

	tests := []struct {
		name    string
		prepare func(g *WithT, name string)
		message string
	}{
		{
			name:    "missing",
			prepare: func(*WithT, string) {},
			message: `GitRepository "` + ns + `/missing" not found`,
		},
		{
			name: "no-status",
			prepare: func(g *WithT, name string) {
				_, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, name, nil)
				g.Expect(err).NotTo(HaveOccurred())
			},
			message: `GitRepository "` + ns + `/no-status" is not ready: it reports no Ready condition yet`,
		},
		{
			name: "ready-without-artifact",
			prepare: func(g *WithT, name string) {
				src, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, name, nil)
				g.Expect(err).NotTo(HaveOccurred())
				conditions.MarkTrue(src, meta.ReadyCondition, meta.SucceededReason, "ok")
				g.Expect(env.Client.Status().Update(ctx, src)).To(Succeed())
			},
			message: `GitRepository "` + ns + `/ready-without-artifact" has no artifact`,
		},
		{
			name: "failed",
			prepare: func(g *WithT, name string) {
				src, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, name, artifact)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(env.SetNotReady(ctx, src, "GitOperationFailed", "authentication required")).To(Succeed())
			},
			message: `GitRepository "` + ns + `/failed" is not ready: authentication required`,
		},
		{
			name: "progressing",
			prepare: func(g *WithT, name string) {
				src, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, name, artifact)
				g.Expect(err).NotTo(HaveOccurred())
				conditions.MarkUnknown(src, meta.ReadyCondition, meta.ProgressingReason, "")
				g.Expect(env.Client.Status().Update(ctx, src)).To(Succeed())
			},
			message: `GitRepository "` + ns + `/progressing" is not ready: Ready is Unknown with reason Progressing`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			tt.prepare(g, tt.name)

			got, err := r.Resolve(ctx, ns, sourceRef(stagesetv1.GitRepositoryKind, ns, tt.name))
			g.Expect(got).To(BeNil())
			var notReady *NotReadyError
			g.Expect(errors.As(err, &notReady)).To(BeTrue(), "error %v is not a NotReadyError", err)
			g.Expect(notReady.Ref.Name).To(Equal(tt.name))
			g.Expect(err.Error()).To(Equal(tt.message))
		})
	}
}

func TestResolveCrossNamespace(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns, other := env.NewNamespace(t), env.NewNamespace(t)
	artifact, err := env.Artifacts.Publish(other+"/shop.tar.gz", "main@sha1:1", map[string]string{"a.yaml": "a"})
	g.Expect(err).NotTo(HaveOccurred())
	_, err = env.CreateSource(ctx, stagesetv1.OCIRepositoryKind, other, "shop", artifact)
	g.Expect(err).NotTo(HaveOccurred())
	ref := sourceRef(stagesetv1.OCIRepositoryKind, other, "shop")

	_, err = (&Resolver{Reader: env.Client, NoCrossNamespaceRefs: true}).Resolve(ctx, ns, ref)
	var denied *AccessDeniedError
	g.Expect(errors.As(err, &denied)).To(BeTrue(), "error %v is not an AccessDeniedError", err)
	g.Expect(denied.Namespace).To(Equal(ns))
	g.Expect(err.Error()).To(ContainSubstring(`OCIRepository "` + other + `/shop"`))
	g.Expect(err.Error()).To(ContainSubstring("--no-cross-namespace-refs"))

	// The flag only guards other namespaces.
	_, err = (&Resolver{Reader: env.Client, NoCrossNamespaceRefs: true}).Resolve(ctx, other, ref)
	g.Expect(err).NotTo(HaveOccurred())

	got, err := (&Resolver{Reader: env.Client}).Resolve(ctx, ns, ref)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got.Artifact.Digest).To(Equal(artifact.Digest))
}

func TestResolveUnsupportedSource(t *testing.T) {
	ns := env.NewNamespace(t)
	r := &Resolver{Reader: env.Client}
	for name, ref := range map[string]stagesetv1.SourceReference{
		"kind":        sourceRef("HelmChart", ns, "shop"),
		"api-version": {APIVersion: "source.toolkit.fluxcd.io/v1beta2", Kind: stagesetv1.GitRepositoryKind, Name: "shop", Namespace: ns},
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			_, err := r.Resolve(context.Background(), ns, ref)
			g.Expect(err).To(MatchError(ErrUnsupportedSource))
			var notReady *NotReadyError
			g.Expect(errors.As(err, &notReady)).To(BeFalse())
		})
	}
}
