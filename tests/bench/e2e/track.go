package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// tracker follows progress with watches (informers), never by polling: it
// records when each benchmark ConfigMap is first seen and when each
// StageSet is first seen Ready in each state (applied revision and handled
// requestedAt token).
type tracker struct {
	mu      sync.Mutex
	changed chan struct{}
	created map[string]time.Time
	sets    map[string]*stagesetv1.StageSet
	readyAt map[string]map[readyState]time.Time
}

// readyState is what a Ready StageSet is Ready with.
type readyState struct {
	Revision, Handled string
}

// startTracker starts informers on the benchmark ConfigMaps (metadata only)
// and StageSets until ctx is done.
func startTracker(ctx context.Context, env *testenv.Environment) (*tracker, error) {
	t := &tracker{
		changed: make(chan struct{}),
		created: map[string]time.Time{},
		sets:    map[string]*stagesetv1.StageSet{},
		readyAt: map[string]map[readyState]time.Time{},
	}
	runs, err := labels.NewRequirement(runLabel, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	cm := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
	cache, err := ctrlcache.New(env.Config, ctrlcache.Options{
		Scheme: env.Scheme,
		ByObject: map[client.Object]ctrlcache.ByObject{
			cm:                     {Label: labels.SelectorFromSet(labels.Set{objectLabel: "true"})},
			&stagesetv1.StageSet{}: {Label: labels.NewSelector().Add(*runs)},
		},
	})
	if err != nil {
		return nil, err
	}
	cmInformer, err := cache.GetInformer(ctx, cm)
	if err != nil {
		return nil, err
	}
	if _, err := cmInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { t.seeObject(obj) },
	}); err != nil {
		return nil, err
	}
	setInformer, err := cache.GetInformer(ctx, &stagesetv1.StageSet{})
	if err != nil {
		return nil, err
	}
	if _, err := setInformer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { t.seeStageSet(obj) },
		UpdateFunc: func(_, obj any) { t.seeStageSet(obj) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = cache.Start(ctx) }()
	if !cache.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the tracker's cache did not sync")
	}
	return t, nil
}

func (t *tracker) seeObject(obj any) {
	now := time.Now()
	m, ok := obj.(client.Object)
	if !ok {
		return
	}
	key := m.GetNamespace() + "/" + m.GetName()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.created[key]; !seen {
		t.created[key] = now
		t.notify()
	}
}

func (t *tracker) seeStageSet(obj any) {
	now := time.Now()
	set, ok := obj.(*stagesetv1.StageSet)
	if !ok {
		return
	}
	key := set.Namespace + "/" + set.Name
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sets[key] = set
	if testenv.ReadyReason(set) == "True/"+stagesetv1.SucceededReason {
		state := readyState{Revision: set.Status.LastAppliedRevision, Handled: set.Status.LastHandledReconcileAt}
		if t.readyAt[key] == nil {
			t.readyAt[key] = map[readyState]time.Time{}
		}
		if _, seen := t.readyAt[key][state]; !seen {
			t.readyAt[key][state] = now
		}
	}
	t.notify()
}

// notify wakes the waiters; t.mu is held.
func (t *tracker) notify() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// ReadyAt returns when the StageSet was first seen Ready in a state that
// match accepts.
func (t *tracker) ReadyAt(key string, match func(readyState) bool) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.readyAtLocked(key, match)
}

func (t *tracker) readyAtLocked(key string, match func(readyState) bool) (time.Time, bool) {
	var first time.Time
	for state, at := range t.readyAt[key] {
		if match(state) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

// CreatedAt returns when the object was first seen.
func (t *tracker) CreatedAt(key string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.created[key]
	return at, ok
}

// StageSet returns the last seen state of a StageSet.
func (t *tracker) StageSet(key string) *stagesetv1.StageSet {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sets[key]
}

// WaitReady waits until every StageSet of keys was seen Ready in a state
// match accepts, and returns when the last one was. It gives up when the
// controller exits or after timeout, saying how many were not Ready and why.
func (t *tracker) WaitReady(ctx context.Context, proc *controllerProcess, timeout time.Duration, keys []string, match func(readyState) bool) (time.Time, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		var last time.Time
		missing := 0
		var example string
		for _, key := range keys {
			at, ok := t.readyAtLocked(key, match)
			if !ok {
				missing++
				if set := t.sets[key]; set != nil && example == "" {
					example = fmt.Sprintf("%s is %s at %q", key, testenv.ReadyReason(set), set.Status.LastAppliedRevision)
				}
				continue
			}
			if at.After(last) {
				last = at
			}
		}
		changed := t.changed
		t.mu.Unlock()
		if missing == 0 {
			return last, nil
		}
		select {
		case <-changed:
		case <-proc.exited:
			return time.Time{}, proc.Exited()
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-deadline.C:
			return time.Time{}, fmt.Errorf("%d of %d StageSets not Ready after %s (e.g. %s)", missing, len(keys), timeout, example)
		}
	}
}
