package snapshot

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/names"
)

// setMeta sets the labels, the writer token and the owner reference of a
// snapshot Secret. The owner reference is the only one: a Secret of an
// earlier StageSet of the same name is taken over rather than shared.
// BlockOwnerDeletion is off so that deleting the StageSet never waits for
// its snapshots.
func (s *Store) setMeta(secret *corev1.Secret, obj *stagesetv1.StageSet, generation *int64) {
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[WriterAnnotation] = s.writerToken(obj, secret.Name)
	labels := secret.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	labels[stagesetv1.NameLabel] = names.LabelValue(obj.Name)
	if generation != nil {
		labels[GenerationLabel] = strconv.FormatInt(*generation, 10)
	}
	secret.Labels = labels
	secret.OwnerReferences = []metav1.OwnerReference{{
		APIVersion:         stagesetv1.GroupVersion.String(),
		Kind:               stagesetv1.StageSetKind,
		Name:               obj.Name,
		UID:                obj.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(false),
	}}
}

// writable tells whether the Store may overwrite or delete secret for obj:
// a Secret of the snapshot type that obj owns, or that carries the writer
// token of a StageSet of this namespace and name (an earlier StageSet of the
// same name, whose owner reference the garbage collector dropped or has not
// acted on yet). A Secret of another type, or of this type but made by
// someone else for someone else, is never touched: the controller writes
// with its own rights, which must not serve a tenant to overwrite a Secret.
func (s *Store) writable(secret *corev1.Secret, obj *stagesetv1.StageSet) bool {
	return secret.Type == SecretType && s.writableMeta(&secret.ObjectMeta, obj)
}

// writableMeta is writable for a Secret known to be of the snapshot type.
func (s *Store) writableMeta(meta *metav1.ObjectMeta, obj *stagesetv1.StageSet) bool {
	if ref := metav1.GetControllerOf(meta); ref != nil && ref.UID == obj.UID {
		return true
	}
	token, ok := meta.Annotations[WriterAnnotation]
	return ok && s.Key.Verify(token, writerPurpose, obj.Namespace, obj.Name, meta.Name)
}

// writerToken is the value of the WriterAnnotation of the Secret name.
func (s *Store) writerToken(obj *stagesetv1.StageSet, name string) string {
	return s.Key.Sum(writerPurpose, obj.Namespace, obj.Name, name)
}
