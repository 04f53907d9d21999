package testenv

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Source is a Flux source object whose status the bed can write.
type Source interface {
	client.Object
	conditions.Setter
	sourcev1.Source
}

// NewSource returns a source of the kind with a minimal valid spec, as a user
// would declare it. The spec is never acted on: no source-controller runs in
// the bed, the tests publish artifacts themselves.
func NewSource(kind, namespace, name string) (Source, error) {
	objectMeta := metav1.ObjectMeta{Namespace: namespace, Name: name}
	interval := metav1.Duration{Duration: time.Minute}
	switch kind {
	case stagesetv1.GitRepositoryKind:
		return &sourcev1.GitRepository{ObjectMeta: objectMeta, Spec: sourcev1.GitRepositorySpec{
			URL: "https://git.example.com/" + name, Interval: interval,
		}}, nil
	case stagesetv1.OCIRepositoryKind:
		return &sourcev1.OCIRepository{ObjectMeta: objectMeta, Spec: sourcev1.OCIRepositorySpec{
			URL: "oci://registry.example.com/" + name, Interval: &interval,
		}}, nil
	case stagesetv1.BucketKind:
		return &sourcev1.Bucket{ObjectMeta: objectMeta, Spec: sourcev1.BucketSpec{
			BucketName: name, Endpoint: "minio.example.com", Interval: interval,
		}}, nil
	case stagesetv1.ExternalArtifactKind:
		return &sourcev1.ExternalArtifact{ObjectMeta: objectMeta}, nil
	default:
		return nil, fmt.Errorf("unknown source kind %q", kind)
	}
}

// CreateSource creates a source of the kind and, when artifact is not nil,
// publishes it on the source's status.
func (e *Environment) CreateSource(ctx context.Context, kind, namespace, name string, artifact *meta.Artifact) (Source, error) {
	return CreateSource(ctx, e.Client, kind, namespace, name, artifact)
}

// SetArtifact writes the artifact to the source's status, see SetArtifact.
func (e *Environment) SetArtifact(ctx context.Context, src Source, artifact *meta.Artifact) error {
	return SetArtifact(ctx, e.Client, src, artifact)
}

// CreateSource creates a source of the kind through c and, when artifact is
// not nil, publishes it on the source's status. The local control plane of
// `make run` uses it too.
func CreateSource(ctx context.Context, c client.Client, kind, namespace, name string, artifact *meta.Artifact) (Source, error) {
	src, err := NewSource(kind, namespace, name)
	if err != nil {
		return nil, err
	}
	if err := c.Create(ctx, src); err != nil {
		return nil, err
	}
	if artifact == nil {
		return src, nil
	}
	return src, SetArtifact(ctx, c, src, artifact)
}

// SetArtifact writes the artifact to the source's status with Ready=True and
// the observed generation, the way source-controller reports a new revision.
func SetArtifact(ctx context.Context, c client.Client, src Source, artifact *meta.Artifact) error {
	setStatusArtifact(src, artifact.DeepCopy())
	conditions.Delete(src, meta.ReconcilingCondition)
	conditions.MarkTrue(src, meta.ReadyCondition, meta.SucceededReason,
		"stored artifact for revision '%s'", artifact.Revision)
	return c.Status().Update(ctx, src)
}

// SetNotReady marks the source Ready=False with the reason and message,
// keeping any artifact it has, as source-controller does on a failed fetch.
func (e *Environment) SetNotReady(ctx context.Context, src Source, reason, message string) error {
	conditions.MarkFalse(src, meta.ReadyCondition, reason, "%s", message)
	return e.Client.Status().Update(ctx, src)
}

func setStatusArtifact(src Source, artifact *meta.Artifact) {
	switch s := src.(type) {
	case *sourcev1.GitRepository:
		s.Status.Artifact, s.Status.ObservedGeneration = artifact, s.Generation
	case *sourcev1.OCIRepository:
		s.Status.Artifact, s.Status.ObservedGeneration = artifact, s.Generation
	case *sourcev1.Bucket:
		s.Status.Artifact, s.Status.ObservedGeneration = artifact, s.Generation
	case *sourcev1.ExternalArtifact:
		s.Status.Artifact = artifact
	}
}

// Repo is a source whose artifacts a test publishes from the artifact
// server, as source-controller would: each revision is a tarball of files
// and the source's status names it.
type Repo struct {
	client    client.Client
	artifacts *ArtifactServer
	kind      string
	source    Source
}

// NewRepo creates the source kind namespace/name through c with the files
// at revision as its artifact.
func NewRepo(ctx context.Context, c client.Client, artifacts *ArtifactServer, kind, namespace, name, revision string, files map[string]string) (*Repo, error) {
	r := &Repo{client: c, artifacts: artifacts, kind: kind}
	artifact, err := r.artifact(namespace, name, revision, files)
	if err != nil {
		return nil, err
	}
	if r.source, err = CreateSource(ctx, c, kind, namespace, name, artifact); err != nil {
		return nil, err
	}
	return r, nil
}

// Publish makes revision, with files, the source's artifact.
func (r *Repo) Publish(ctx context.Context, revision string, files map[string]string) error {
	artifact, err := r.artifact(r.source.GetNamespace(), r.source.GetName(), revision, files)
	if err != nil {
		return err
	}
	// The latest source, whose status is then replaced.
	if err := r.client.Get(ctx, client.ObjectKeyFromObject(r.source), r.source); err != nil {
		return err
	}
	return SetArtifact(ctx, r.client, r.source, artifact)
}

func (r *Repo) artifact(namespace, name, revision string, files map[string]string) (*meta.Artifact, error) {
	return r.artifacts.Publish(fmt.Sprintf("%s/%s/%s/%s.tar.gz", r.kind, namespace, name, revision), revision, files)
}
