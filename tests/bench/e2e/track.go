package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// tracker follows progress with watches (informers), never by polling: it
// records when each benchmark object is first seen, when each Deployment is
// first seen healthy, and when each StageSet is first seen Ready in each
// state (applied revision and handled requestedAt token).
type tracker struct {
	mu      sync.Mutex
	changed chan struct{}
	created map[string]time.Time
	healthy map[string]time.Time
	// full are the objects watched in full, whose health is judged.
	full    map[string]bool
	sets    map[string]*stagesetv1.StageSet
	readyAt map[string]map[readyState]time.Time
}

// readyState is what a Ready StageSet is Ready with.
type readyState struct {
	Revision, Handled string
}

// configMapKind is what the scenarios on the test API server apply.
var configMapKind = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

// startTracker starts informers on the benchmark objects of kinds and on
// StageSets until ctx is done. Objects are watched as metadata only, but
// Deployments in full: their health (kstatus, the controller's rule) is
// what gates a stage, and what the waiting baseline waits for.
func startTracker(ctx context.Context, srv *apiServer, kinds ...schema.GroupVersionKind) (*tracker, error) {
	t := &tracker{
		changed: make(chan struct{}),
		created: map[string]time.Time{},
		healthy: map[string]time.Time{},
		full:    map[string]bool{},
		sets:    map[string]*stagesetv1.StageSet{},
		readyAt: map[string]map[readyState]time.Time{},
	}
	runs, err := labels.NewRequirement(runLabel, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	byObject := map[client.Object]ctrlcache.ByObject{
		&stagesetv1.StageSet{}: {Label: labels.NewSelector().Add(*runs)},
	}
	var objects []client.Object
	for _, gvk := range kinds {
		var obj client.Object = &metav1.PartialObjectMetadata{}
		if gvk.Kind == "Deployment" {
			obj = &unstructured.Unstructured{}
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		byObject[obj] = ctrlcache.ByObject{Label: labels.SelectorFromSet(labels.Set{objectLabel: "true"})}
		objects = append(objects, obj)
	}
	cache, err := ctrlcache.New(srv.Config, ctrlcache.Options{Scheme: srv.Scheme, ByObject: byObject})
	if err != nil {
		return nil, err
	}
	for _, obj := range objects {
		informer, err := cache.GetInformer(ctx, obj)
		if err != nil {
			return nil, err
		}
		if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { t.seeObject(obj) },
			UpdateFunc: func(_, obj any) { t.seeObject(obj) },
		}); err != nil {
			return nil, err
		}
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
	u, full := obj.(*unstructured.Unstructured)
	healthy := false
	if full {
		res, err := status.Compute(u)
		healthy = err == nil && res.Status == status.CurrentStatus
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if full {
		t.full[key] = true
	}
	if _, seen := t.created[key]; !seen {
		t.created[key] = now
		t.notify()
	}
	if _, seen := t.healthy[key]; healthy && !seen {
		t.healthy[key] = now
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

// SettledAt returns when the object was first seen healthy if it is
// watched in full (a Deployment), else when it was first seen: the moment
// it stops holding its stage back.
func (t *tracker) SettledAt(key string) (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.healthy[key]; ok {
		return at, true
	}
	if t.full[key] {
		return time.Time{}, false
	}
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

// WaitHealthy waits until every object of keys was seen healthy, after
// timeout saying how many were not.
func (t *tracker) WaitHealthy(ctx context.Context, timeout time.Duration, keys []string) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		t.mu.Lock()
		missing := 0
		for _, key := range keys {
			if _, ok := t.healthy[key]; !ok {
				missing++
			}
		}
		changed := t.changed
		t.mu.Unlock()
		if missing == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("%d of %d objects not healthy after %s", missing, len(keys), timeout)
		}
	}
}
