package controller

import (
	"context"
	"errors"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// errSuperseded is the cause of an interruption by a newer revision.
var errSuperseded = errors.New("a new source revision arrived")

// inflight tracks the runs under way, so that a new source revision can
// interrupt a run pinned to an older one (SPEC §3.2): no waiting for the
// timeout of a revision that will never be rolled out.
//
// Only waits are interrupted — health checks and migration Job waits,
// which the next run takes up again where the cluster is. An apply half-way
// through a stage, an action already under way and a rollback are left to
// finish: cutting them short would leave the cluster in a state no run
// planned. The run notices the supersession at its next stage boundary.
type inflight struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]*inflightRun
}

type inflightRun struct {
	mu sync.Mutex
	// revisions is the pinned set, filled once the sources are resolved.
	revisions map[string]string
	// superseded is set when a source published another revision.
	superseded bool
	// cancelWait interrupts the wait under way, if any.
	cancelWait context.CancelCauseFunc
}

// start registers a run; done unregisters it.
func (f *inflight) start(key types.NamespacedName) (*inflightRun, func()) {
	run := &inflightRun{}
	f.mu.Lock()
	if f.runs == nil {
		f.runs = map[types.NamespacedName]*inflightRun{}
	}
	f.runs[key] = run
	f.mu.Unlock()
	return run, func() {
		f.mu.Lock()
		if f.runs[key] == run {
			delete(f.runs, key)
		}
		f.mu.Unlock()
	}
}

// pin records the revision set a run rolls out.
func (f *inflight) pin(run *inflightRun, revisions map[string]string) {
	run.mu.Lock()
	run.revisions = revisions
	run.mu.Unlock()
}

// supersede marks the run of key superseded when it is pinned to another
// revision of the source than the one just published, and interrupts its
// wait if it is waiting.
func (f *inflight) supersede(key types.NamespacedName, sourceKey, revision string) {
	f.mu.Lock()
	run, ok := f.runs[key]
	f.mu.Unlock()
	if !ok {
		return
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	if pinned, uses := run.revisions[sourceKey]; !uses || pinned == revision {
		return
	}
	run.superseded = true
	if run.cancelWait != nil {
		run.cancelWait(errSuperseded)
	}
}

// isSuperseded tells whether a newer revision made the run obsolete.
func (run *inflightRun) isSuperseded() bool {
	if run == nil {
		return false
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.superseded
}

// wait returns the context of a wait that a newer revision may interrupt
// (cause errSuperseded), and the function that ends it. A run superseded
// before the wait starts gets a context cancelled already.
func (run *inflightRun) wait(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	if run == nil {
		return ctx, func() { cancel(nil) }
	}
	run.mu.Lock()
	run.cancelWait = cancel
	if run.superseded {
		cancel(errSuperseded)
	}
	run.mu.Unlock()
	return ctx, func() {
		run.mu.Lock()
		run.cancelWait = nil
		run.mu.Unlock()
		cancel(nil)
	}
}
