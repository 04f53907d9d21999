package controller

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// appliedInputs remembers, per StageSet, the digest of the inputs its last
// successful run applied (run.inputsDigest), so that a steady-state run can
// tell a changed substituteFrom value from drift without reading the
// snapshot. After a restart it is empty, and the first run compares the
// built objects with the snapshot instead.
type appliedInputs struct {
	mu      sync.Mutex
	digests map[types.UID]string
}

func (a *appliedInputs) matches(uid types.UID, digest string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	known, ok := a.digests[uid]
	return ok && known == digest
}

func (a *appliedInputs) record(uid types.UID, digest string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.digests == nil {
		a.digests = map[types.UID]string{}
	}
	a.digests[uid] = digest
}

func (a *appliedInputs) forget(uid types.UID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.digests, uid)
}
