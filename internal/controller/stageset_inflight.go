package controller

import (
	"context"
	"errors"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// errSuperseded cancels a run whose pinned revision set is obsolete.
var errSuperseded = errors.New("a new source revision arrived")

// inflight tracks the runs under way, so that a new source revision can
// cancel the health waits of a run pinned to an older one (SPEC §3.2): no
// waiting for the timeout of a revision that will never be rolled out.
type inflight struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]*inflightRun
}

type inflightRun struct {
	cancel context.CancelCauseFunc
	// revisions is the pinned set, filled once the sources are resolved.
	revisions map[string]string
}

// start registers a run and returns its context; done unregisters it.
func (f *inflight) start(ctx context.Context, key types.NamespacedName) (context.Context, *inflightRun, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	run := &inflightRun{cancel: cancel}
	f.mu.Lock()
	if f.runs == nil {
		f.runs = map[types.NamespacedName]*inflightRun{}
	}
	f.runs[key] = run
	f.mu.Unlock()
	return ctx, run, func() {
		f.mu.Lock()
		if f.runs[key] == run {
			delete(f.runs, key)
		}
		f.mu.Unlock()
		cancel(nil)
	}
}

// pin records the revision set a run rolls out.
func (f *inflight) pin(run *inflightRun, revisions map[string]string) {
	f.mu.Lock()
	run.revisions = revisions
	f.mu.Unlock()
}

// supersede cancels the run of key when it is pinned to another revision of
// the source than the one just published.
func (f *inflight) supersede(key types.NamespacedName, sourceKey, revision string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	run, ok := f.runs[key]
	if !ok || run.revisions == nil {
		return
	}
	if pinned, uses := run.revisions[sourceKey]; uses && pinned != revision {
		run.cancel(errSuperseded)
	}
}
