package controller

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// knownVersions remembers, per StageSet, the resourceVersion the
// reconciler last wrote (or read from the API server). A reconcile reads
// its StageSet from the informer cache, which may not have the status the
// previous run wrote yet: a request queued during that run (a source event
// that raced with the StageSet's creation, say) starts the next reconcile
// the moment the run ends. Acting on the older status, the reconcile would
// roll out again a revision the run just applied — its actions and events
// twice, forced applies undoing what was changed since, completed
// migration Jobs deleted. A cached StageSet older than the version known
// is read again from the API server.
//
// resourceVersions are ordered with apimachinery's CompareResourceVersion
// (Kubernetes 1.35 made them comparable within a resource); one it cannot
// read is only compared for equality, and a mismatch costs one GET.
type knownVersions struct {
	mu       sync.Mutex
	versions map[types.NamespacedName]string
}

// set records the resourceVersion of the StageSet as last written or read.
func (k *knownVersions) set(key types.NamespacedName, resourceVersion string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.versions == nil {
		k.versions = map[types.NamespacedName]string{}
	}
	k.versions[key] = resourceVersion
}

// current tells whether a cached StageSet of resourceVersion holds at least
// what the reconciler last wrote: nothing is known (no write since the
// controller started, whose cache was then listed anew), or it is the
// version known or a later one.
func (k *knownVersions) current(key types.NamespacedName, resourceVersion string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	known, ok := k.versions[key]
	if !ok || known == resourceVersion {
		return true
	}
	// Newer than the last write (another writer's spec or annotation
	// change) holds that write too: no read needed.
	newer, err := resourceversion.CompareResourceVersion(resourceVersion, known)
	return err == nil && newer > 0
}

func (k *knownVersions) forget(key types.NamespacedName) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.versions, key)
}

// readCurrent reads the StageSet of key from the cache, and from the API
// server when the cache may be behind the reconciler's last write.
func (r *StageSetReconciler) readCurrent(ctx context.Context, key types.NamespacedName, obj *stagesetv1.StageSet) error {
	if err := r.Get(ctx, key, obj); err != nil {
		return err
	}
	if r.known.current(key, obj.ResourceVersion) {
		return nil
	}
	// Into an empty object, so that nothing of the cached copy can outlive
	// the read, whatever the decoder does with fields the answer leaves out
	// (today's JSON decoding of a typed object keeps none: checked).
	*obj = stagesetv1.StageSet{}
	if err := r.APIReader.Get(ctx, key, obj); err != nil {
		return err
	}
	r.known.set(key, obj.ResourceVersion)
	return nil
}
