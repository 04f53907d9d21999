package source

import (
	"context"
	"errors"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// ErrUnsupportedSource is wrapped by the error Resolve returns for a
// reference whose API version or kind is not a Flux source it can read.
// Retrying cannot fix it: the StageSet's spec has to change.
var ErrUnsupportedSource = errors.New("unsupported source")

// Resolved is a source reference with the artifact it serves now.
type Resolved struct {
	// Ref is the reference with APIVersion and Namespace defaulted, as
	// StageSet.GetStageSourceRef returns it.
	Ref stagesetv1.SourceReference
	// Artifact is the source's current artifact.
	Artifact meta.Artifact
}

// NotReadyError says that a source cannot be used yet: it does not exist, is
// not Ready, or has no artifact. The controller waits for it (a short requeue
// without error backoff) and reports Ready=False reason SourceNotReady.
type NotReadyError struct {
	// Ref is the source that is not ready.
	Ref stagesetv1.SourceReference
	// Reason completes the sentence that starts with the source's kind and
	// name, e.g. "not found", "has no artifact" or "is not ready: <message>".
	Reason string
}

// Error returns e.g. `GitRepository "apps/shop" is not ready: <message>`.
func (e *NotReadyError) Error() string {
	return fmt.Sprintf("%s %q %s", e.Ref.Kind, e.Ref.Namespace+"/"+e.Ref.Name, e.Reason)
}

// AccessDeniedError says that a StageSet refers to a source in another
// namespace while the controller forbids cross-namespace references. It is
// terminal: only a change of the spec (or of the flag) can fix it.
type AccessDeniedError struct {
	// Ref is the refused source.
	Ref stagesetv1.SourceReference
	// Namespace is the namespace of the StageSet that refers to it.
	Namespace string
}

// Error names the source, the StageSet's namespace and the flag that forbids
// the reference.
func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("cannot access %s %q from namespace %q: cross-namespace references are not allowed (--no-cross-namespace-refs)",
		e.Ref.Kind, e.Ref.Namespace+"/"+e.Ref.Name, e.Namespace)
}

// Resolver looks sources up through a client.Reader, typically the manager's
// cached client, so resolving on every run costs no API round trip.
type Resolver struct {
	// Reader reads the source objects.
	Reader client.Reader
	// NoCrossNamespaceRefs refuses references to sources outside the
	// StageSet's namespace (--no-cross-namespace-refs).
	NoCrossNamespaceRefs bool
}

// Resolve returns the current artifact of the source ref points at. namespace
// is the StageSet's namespace, against which cross-namespace references are
// checked. ref normally arrives defaulted; an empty APIVersion or Namespace is
// defaulted here the same way.
//
// Errors: *AccessDeniedError for a refused cross-namespace reference,
// *NotReadyError when the source is missing, not Ready (its Ready condition is
// missing, Unknown or False) or has no artifact, an error wrapping
// ErrUnsupportedSource for an unknown API version or kind, and any other
// error from the Reader as is (wrapped).
func (r *Resolver) Resolve(ctx context.Context, namespace string, ref stagesetv1.SourceReference) (*Resolved, error) {
	if ref.APIVersion == "" {
		ref.APIVersion = stagesetv1.SourceAPIVersion
	}
	if ref.Namespace == "" {
		ref.Namespace = namespace
	}
	if r.NoCrossNamespaceRefs && ref.Namespace != namespace {
		return nil, &AccessDeniedError{Ref: ref, Namespace: namespace}
	}

	obj, err := newSourceObject(ref)
	if err != nil {
		return nil, err
	}
	key := client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
	if err := r.Reader.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &NotReadyError{Ref: ref, Reason: "not found"}
		}
		return nil, fmt.Errorf("getting %s %q: %w", ref.Kind, key.String(), err)
	}

	if reason, ready := readiness(obj); !ready {
		return nil, &NotReadyError{Ref: ref, Reason: reason}
	}
	artifact := obj.GetArtifact()
	if artifact == nil {
		return nil, &NotReadyError{Ref: ref, Reason: "has no artifact"}
	}
	return &Resolved{Ref: ref, Artifact: *artifact.DeepCopy()}, nil
}

// sourceObject is what every Flux source kind implements.
type sourceObject interface {
	client.Object
	conditions.Getter
	sourcev1.Source
}

// newSourceObject returns an empty object of the referenced kind.
func newSourceObject(ref stagesetv1.SourceReference) (sourceObject, error) {
	if ref.APIVersion != sourcev1.GroupVersion.String() {
		return nil, fmt.Errorf("%w: API version %q of %s (want %s)",
			ErrUnsupportedSource, ref.APIVersion, ref.String(), sourcev1.GroupVersion.String())
	}
	switch ref.Kind {
	case stagesetv1.GitRepositoryKind:
		return &sourcev1.GitRepository{}, nil
	case stagesetv1.OCIRepositoryKind:
		return &sourcev1.OCIRepository{}, nil
	case stagesetv1.BucketKind:
		return &sourcev1.Bucket{}, nil
	case stagesetv1.ExternalArtifactKind:
		return &sourcev1.ExternalArtifact{}, nil
	default:
		return nil, fmt.Errorf("%w: kind %q of %s (want GitRepository, OCIRepository, Bucket or ExternalArtifact)",
			ErrUnsupportedSource, ref.Kind, ref.String())
	}
}

// readiness tells whether the source's Ready condition is True and, when it
// is not, why, as the rest of a NotReadyError sentence. The source's own
// message is kept: it is what the user needs to fix the source.
func readiness(obj conditions.Getter) (reason string, ready bool) {
	c := conditions.Get(obj, meta.ReadyCondition)
	switch {
	case c == nil:
		return "is not ready: it reports no Ready condition yet", false
	case c.Status == metav1.ConditionTrue:
		return "", true
	case c.Message != "":
		return "is not ready: " + c.Message, false
	default:
		return fmt.Sprintf("is not ready: Ready is %s with reason %s", c.Status, c.Reason), false
	}
}
