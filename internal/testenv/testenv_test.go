package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

var env *Environment

func TestMain(m *testing.M) { os.Exit(Run(m, &env)) }

func TestAPIServerIsTheBuiltVersion(t *testing.T) {
	g := NewWithT(t)
	dc, err := discovery.NewDiscoveryClientForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	info, err := dc.ServerVersion()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.GitVersion).To(Equal(KubernetesVersion))
}

func TestCRDsAreEstablished(t *testing.T) {
	g := NewWithT(t)
	for _, name := range []string{
		"stagesets.stageset.io",
		"gitrepositories.source.toolkit.fluxcd.io",
		"ocirepositories.source.toolkit.fluxcd.io",
		"buckets.source.toolkit.fluxcd.io",
		"externalartifacts.source.toolkit.fluxcd.io",
	} {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Name: name}, crd)).To(Succeed(), name)
		established := false
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				established = true
			}
		}
		g.Expect(established).To(BeTrue(), "%s is not established", name)
	}
}

func TestArtifactServerServesTarballsWithTheirDigest(t *testing.T) {
	g := NewWithT(t)
	artifact, err := env.Artifacts.Publish("gitrepository/ns/app/abc.tar.gz", "main@sha1:abc",
		map[string]string{"app/cm.yaml": "kind: ConfigMap\n"})
	g.Expect(err).NotTo(HaveOccurred())

	resp, err := http.Get(artifact.URL)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))

	sum := sha256.Sum256(body)
	g.Expect(artifact.Digest).To(Equal("sha256:" + hex.EncodeToString(sum[:])))
	g.Expect(*artifact.Size).To(Equal(int64(len(body))))
	g.Expect(env.Artifacts.Requests(artifact.Path)).To(Equal(int64(1)))

	// The same files give the same bytes, so digests are stable across runs.
	again, err := env.Artifacts.Publish("other.tar.gz", "x", map[string]string{"app/cm.yaml": "kind: ConfigMap\n"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again.Digest).To(Equal(artifact.Digest))

	missing, err := http.Get(env.Artifacts.URL("nope.tar.gz"))
	g.Expect(err).NotTo(HaveOccurred())
	missing.Body.Close()
	g.Expect(missing.StatusCode).To(Equal(http.StatusNotFound))
}

func TestSourcesCarryTheirArtifactLikeSourceController(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	for _, kind := range []string{
		stagesetv1.GitRepositoryKind, stagesetv1.OCIRepositoryKind,
		stagesetv1.BucketKind, stagesetv1.ExternalArtifactKind,
	} {
		t.Run(kind, func(t *testing.T) {
			g := NewWithT(t)
			artifact, err := env.Artifacts.Publish(kind+".tar.gz", "rev-1", map[string]string{"a.yaml": "a: 1\n"})
			g.Expect(err).NotTo(HaveOccurred())
			src, err := env.CreateSource(ctx, kind, ns, "src", artifact)
			g.Expect(err).NotTo(HaveOccurred())

			got, err := NewSource(kind, ns, "src")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(src), got)).To(Succeed())
			g.Expect(got.GetArtifact()).NotTo(BeNil())
			g.Expect(got.GetArtifact().Revision).To(Equal("rev-1"))
			g.Expect(got.GetArtifact().Digest).To(Equal(artifact.Digest))
			g.Expect(conditions.IsReady(got)).To(BeTrue())

			g.Expect(env.SetNotReady(ctx, got, "GitOperationFailed", "boom")).To(Succeed())
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(src), got)).To(Succeed())
			g.Expect(conditions.IsReady(got)).To(BeFalse())
			g.Expect(conditions.GetReason(got, meta.ReadyCondition)).To(Equal("GitOperationFailed"))
			g.Expect(got.GetArtifact()).NotTo(BeNil(), "a failed fetch keeps the last artifact")
		})
	}
}
