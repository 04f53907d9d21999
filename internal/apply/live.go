package apply

import (
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// LiveObjects are the objects of a stage as the API server last returned
// them to Apply, from a read or a write. Wait judges health from them first:
// an object that is Current in the API server's own answer to its write
// needs no read, so a stage of ConfigMaps is verified without a request.
// Objects that are not Current there, or whose kind needs more than the
// object to judge, are polled as before.
//
// It is safe for concurrent use. The zero value is not usable: see
// NewLiveObjects.
type LiveObjects struct {
	mu      sync.Mutex
	objects map[object.ObjMetadata]*unstructured.Unstructured
}

// NewLiveObjects returns an empty set, to pass to Apply and then to Wait.
func NewLiveObjects() *LiveObjects {
	return &LiveObjects{objects: map[object.ObjMetadata]*unstructured.Unstructured{}}
}

func (l *LiveObjects) put(obj *unstructured.Unstructured) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.objects[object.UnstructuredToObjMetadata(obj)] = obj.DeepCopy()
}

// current returns the objects of set that are Current as last seen: they
// need not be polled.
func (l *LiveObjects) current(set object.ObjMetadataSet, exprs []kustomize.CustomHealthCheck) object.ObjMetadataSet {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out object.ObjMetadataSet
	for _, id := range set {
		obj, ok := l.objects[id]
		if !ok || !judgedByItself(id.GroupKind, exprs) {
			continue
		}
		if res, err := status.Compute(obj); err == nil && res.Status == status.CurrentStatus {
			out = append(out, id)
		}
	}
	return out
}

// judgedByItself tells whether kstatus judges an object of the kind from
// the object alone, with the generic rules (status.Compute), as the poller
// does. Kinds the poller judges otherwise are always polled: those of a
// healthCheckExprs entry (CEL), Jobs (complete, not just started), and the
// workloads whose readers also look at the ReplicaSets and Pods they own.
func judgedByItself(gk schema.GroupKind, exprs []kustomize.CustomHealthCheck) bool {
	for _, e := range exprs {
		checked := schema.FromAPIVersionAndKind(e.APIVersion, e.Kind).GroupKind()
		if checked.Group == gk.Group && (checked.Kind == "" || checked.Kind == gk.Kind) {
			return false
		}
	}
	switch gk {
	case schema.GroupKind{Group: "batch", Kind: "Job"},
		schema.GroupKind{Group: "apps", Kind: "Deployment"},
		schema.GroupKind{Group: "apps", Kind: "StatefulSet"},
		schema.GroupKind{Group: "apps", Kind: "ReplicaSet"}:
		return false
	}
	return true
}
