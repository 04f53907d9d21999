package apply

import (
	"context"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// LiveObjects are the objects of a stage as the API server last returned
// them to Apply, from a read or a write. Wait judges health from them first:
// an object that is Current in the API server's own answer to its write
// needs no read, so a stage of ConfigMaps is verified without a request.
// Objects that are not Current there are waited for.
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
	kept := obj.DeepCopy()
	// Health is judged from spec and status; the managed fields are most of
	// a small object's size.
	kept.SetManagedFields(nil)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.objects[object.UnstructuredToObjMetadata(obj)] = kept
}

// current returns the objects of set that are Current as last seen, by
// the rules Wait judges them with: they need not be waited for.
func (l *LiveObjects) current(ctx context.Context, set object.ObjMetadataSet, j *judge) object.ObjMetadataSet {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out object.ObjMetadataSet
	for _, id := range set {
		if obj, ok := l.objects[id]; ok && j.status(ctx, obj).Status == status.CurrentStatus {
			out = append(out, id)
		}
	}
	return out
}
