package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// inputDigests remembers a digest of stage inputs (run.inputsDigest) per
// StageSet. The reconciler keeps two: the inputs of the last successful run,
// so that a steady-state run can tell a changed substituteFrom value from
// drift without reading the snapshot; and the inputs of the last rollout
// attempted, so that a changed value lifts the hold on a rolled back
// revision set. Both are empty after a restart: the first run then compares
// its built objects with the snapshot, and a hold stays until a revision,
// the spec or a requestedAt token changes.
type inputDigests struct {
	mu      sync.Mutex
	digests map[types.UID]string
}

func (a *inputDigests) get(uid types.UID) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	digest, ok := a.digests[uid]
	return digest, ok
}

func (a *inputDigests) matches(uid types.UID, digest string) bool {
	known, ok := a.get(uid)
	return ok && known == digest
}

func (a *inputDigests) record(uid types.UID, digest string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.digests == nil {
		a.digests = map[types.UID]string{}
	}
	a.digests[uid] = digest
}

func (a *inputDigests) forget(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.digests, uid)
}
