package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/clusterreader"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	kstatusreaders "github.com/fluxcd/cli-utils/pkg/kstatus/polling/statusreaders"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"github.com/fluxcd/pkg/runtime/statusreaders"
	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Why a health engine of our own rather than the kstatus poller that ssa
// uses: the poller reads every object with a GET each interval (and, for
// Deployments and StatefulSets, lists their ReplicaSets and Pods too, for
// messages only), so a stage of 200 Deployments cost ~4 requests per object
// and noticed health up to an interval late. Here the stage's own objects
// are followed with one watch per kind and namespace, selected by the
// stage's owner labels: the API server sends each object's state and then
// its changes, and a stage is known healthy the moment its last object is.
// Objects outside the stage (healthChecks), and kinds the identity may not
// watch, are read one by one each interval, as before. Objects are judged
// by the same rules as the poller's (judge).

// judge tells the health of an object by the rules the controller's
// kstatus poller applied: a healthCheckExprs entry for its kind (CEL), Jobs
// healthy once complete, any other kind by kstatus (status.Compute) from
// the object alone. One thing kstatus learns from more than the object: a
// StatefulSet or a ReplicaSet with a failed Pod (crash-looping, say) is
// Failed, not InProgress; deep asks it, at a list of Pods a call.
type judge struct {
	// cel is the reader of the healthCheckExprs, nil without any; it comes
	// first in readers.
	cel     engine.StatusReader
	readers []engine.StatusReader
	// pods judges StatefulSets and ReplicaSets with their Pods, through
	// cluster.
	pods    engine.StatusReader
	cluster engine.ClusterReader
}

func newJudge(c client.Reader, mapper meta.RESTMapper, exprs []kustomize.CustomHealthCheck) (*judge, error) {
	j := &judge{pods: kstatusreaders.NewDefaultStatusReader(mapper)}
	if len(exprs) > 0 {
		newReader, err := cel.NewStatusReader(exprs)
		if err != nil {
			return nil, err
		}
		j.cel = newReader(mapper)
		j.readers = append(j.readers, j.cel)
	}
	j.readers = append(j.readers, statusreaders.NewCustomJobStatusReader(mapper), kstatusreaders.NewGenericStatusReader(mapper, status.Compute))
	j.cluster, _ = clusterreader.NewDirectClusterReader(c, mapper, nil)
	return j, nil
}

// status judges obj from the object alone; the readers get no cluster
// reader.
func (j *judge) status(ctx context.Context, obj *unstructured.Unstructured) *event.ResourceStatus {
	id := object.UnstructuredToObjMetadata(obj)
	for _, r := range j.readers {
		if !r.Supports(id.GroupKind) {
			continue
		}
		rs, err := r.ReadStatusForObject(ctx, nil, obj)
		if err != nil {
			return &event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err}
		}
		rs.Identifier = id
		return rs
	}
	return &event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: errors.New("no status reader")}
}

// deep judges obj as status does, and a StatefulSet or ReplicaSet that is
// InProgress there (and has no CEL expression) by its Pods too.
func (j *judge) deep(ctx context.Context, obj *unstructured.Unstructured) *event.ResourceStatus {
	rs := j.status(ctx, obj)
	if rs.Status != status.InProgressStatus || !podControllers[rs.Identifier.GroupKind] || j.byCEL(rs.Identifier.GroupKind) {
		return rs
	}
	withPods, err := j.pods.ReadStatusForObject(ctx, j.cluster, obj)
	if err != nil || withPods.Status != status.FailedStatus {
		return rs
	}
	withPods.Identifier = rs.Identifier
	return withPods
}

// byCEL tells whether a healthCheckExprs entry judges the kind.
func (j *judge) byCEL(gk schema.GroupKind) bool {
	return j.cel != nil && j.cel.Supports(gk)
}

// podControllers are the kinds kstatus fails by their Pods.
var podControllers = map[schema.GroupKind]bool{
	{Group: "apps", Kind: "StatefulSet"}: true,
	{Group: "apps", Kind: "ReplicaSet"}:  true,
}

// healthState is the last known status of every object waited for.
type healthState struct {
	mu       sync.Mutex
	order    object.ObjMetadataSet
	statuses map[object.ObjMetadata]*event.ResourceStatus
	// changed is signalled (without blocking) on every update.
	changed chan struct{}
}

func newHealthState(set object.ObjMetadataSet) *healthState {
	h := &healthState{order: set, statuses: map[object.ObjMetadata]*event.ResourceStatus{}, changed: make(chan struct{}, 1)}
	for _, id := range set {
		h.statuses[id] = notFound(id)
	}
	return h
}

func notFound(id object.ObjMetadata) *event.ResourceStatus {
	return &event.ResourceStatus{Identifier: id, Status: status.NotFoundStatus, Message: "Resource not found"}
}

func (h *healthState) set(rs *event.ResourceStatus) {
	h.mu.Lock()
	if _, ok := h.statuses[rs.Identifier]; !ok {
		h.mu.Unlock()
		return
	}
	h.statuses[rs.Identifier] = rs
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *healthState) current(id object.ObjMetadata) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statuses[id].Status == status.CurrentStatus
}

func (h *healthState) snapshot() []*event.ResourceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]*event.ResourceStatus, 0, len(h.order))
	for _, id := range h.order {
		out = append(out, h.statuses[id])
	}
	return out
}

// healthGroup is the objects of one kind in one namespace.
type healthGroup struct {
	gvk       schema.GroupVersionKind
	namespace string
	ids       map[object.ObjMetadata]bool
	// watch tells that the objects carry the selector's labels.
	watch bool
}

// waitFor waits until every object of set is Current (nil), one is Failed,
// the timeout passes or ctx is cancelled. Objects of watched (the stage's
// own, which carry selector's labels) are followed by watches when the
// client can watch, the others read each interval. The error lists what
// was not healthy, as described on Wait.
func (m *Manager) waitFor(ctx context.Context, j *judge, set, watched object.ObjMetadataSet, selector map[string]string, interval, timeout time.Duration) error {
	waitCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	health := newHealthState(set)
	var workers sync.WaitGroup
	for _, g := range m.healthGroups(set, watched, selector, health) {
		workers.Add(1)
		go func() {
			defer workers.Done()
			if g.watch {
				m.watchGroup(waitCtx, j, g, selector, interval, health)
			} else {
				m.pollGroup(waitCtx, j, g, interval, health)
			}
		}()
	}

	var final []*event.ResourceStatus
	for final == nil && waitCtx.Err() == nil {
		select {
		case <-health.changed:
			if observed := health.snapshot(); isSettled(observed) {
				final = observed
			}
		case <-waitCtx.Done():
		}
	}
	cancel()
	workers.Wait()

	if final == nil {
		// Cancelled from outside: the caller no longer cares which objects
		// were ready. A deadline of ctx (the stage budget) is a timeout like
		// ours, and gets the list of what was not ready.
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		final = health.snapshot()
	}
	var failed, notReady []string
	for _, rs := range final {
		switch rs.Status {
		case status.CurrentStatus:
		case status.FailedStatus:
			failed = append(failed, describe(rs))
		default:
			notReady = append(notReady, describe(rs))
		}
	}
	switch {
	case len(failed) > 0:
		return fmt.Errorf("health check failed for: [%s]", strings.Join(failed, ", "))
	case len(notReady) > 0:
		return fmt.Errorf("timeout waiting for: [%s]", strings.Join(notReady, ", "))
	}
	return nil
}

// healthGroups groups the set by kind and namespace.
func (m *Manager) healthGroups(set, watched object.ObjMetadataSet, selector map[string]string, health *healthState) []healthGroup {
	_, canWatch := m.client.(client.WithWatch)
	canWatch = canWatch && len(selector) > 0
	own := map[object.ObjMetadata]bool{}
	for _, id := range watched {
		own[id] = true
	}
	type key struct {
		gk        schema.GroupKind
		namespace string
		watch     bool
	}
	index := map[key]int{}
	var groups []healthGroup
	for _, id := range set {
		// A kind the cluster does not serve yet (its CRD may come) is
		// polled, its mapping looked up again at each read.
		var gvk schema.GroupVersionKind
		mapping, err := m.client.RESTMapper().RESTMapping(id.GroupKind)
		if err != nil {
			health.set(&event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err})
		} else {
			gvk = mapping.GroupVersionKind
		}
		k := key{gk: id.GroupKind, namespace: id.Namespace, watch: canWatch && own[id] && err == nil}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, healthGroup{gvk: gvk, namespace: id.Namespace, ids: map[object.ObjMetadata]bool{}, watch: k.watch})
		}
		groups[i].ids[id] = true
	}
	return groups
}

// pollGroup reads the objects of the group that are not Current yet, one
// by one, each interval.
func (m *Manager) pollGroup(ctx context.Context, j *judge, g healthGroup, interval time.Duration, health *healthState) {
	for {
		for id := range g.ids {
			if !health.current(id) {
				m.read(ctx, j, g.gvk, id, health)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// read gets one object and records its status. gvk is empty for a kind
// the cluster did not serve when the wait began: it is looked up again.
func (m *Manager) read(ctx context.Context, j *judge, gvk schema.GroupVersionKind, id object.ObjMetadata, health *healthState) {
	if gvk.Empty() {
		mapping, err := m.client.RESTMapper().RESTMapping(id.GroupKind)
		if err != nil {
			health.set(&event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err})
			return
		}
		gvk = mapping.GroupVersionKind
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := m.client.Get(ctx, client.ObjectKey{Namespace: id.Namespace, Name: id.Name}, u)
	switch {
	case ctx.Err() != nil || isDeadlineError(err):
		// The wait is ending: keep the last status, which says more.
	case apierrors.IsNotFound(err):
		health.set(notFound(id))
	case err != nil:
		health.set(&event.ResourceStatus{Identifier: id, Status: status.UnknownStatus, Error: err})
	default:
		health.set(j.deep(ctx, u))
	}
}

// isDeadlineError tells whether a request was refused because the deadline
// was about to pass: client-go's rate limiter refuses to wait past a
// deadline with an error of its own, which has no type to match.
func isDeadlineError(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "would exceed context deadline"))
}

// watchGroup follows the objects of the group with a watch of their kind
// in their namespace, selected by the stage's labels; the watch is opened
// again when the API server ends it. When the identity may not watch the
// kind, the group is polled instead.
func (m *Manager) watchGroup(ctx context.Context, j *judge, g healthGroup, selector map[string]string, interval time.Duration, health *healthState) {
	wc := m.client.(client.WithWatch)
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(g.gvk.GroupVersion().WithKind(g.gvk.Kind + "List"))
	opts := []client.ListOption{client.MatchingLabels(selector)}
	if g.namespace != "" {
		opts = append(opts, client.InNamespace(g.namespace))
	}
	for ctx.Err() == nil {
		w, err := wc.Watch(ctx, list, opts...)
		if err != nil {
			if ctx.Err() == nil {
				m.pollGroup(ctx, j, g, interval, health)
			}
			return
		}
		opened := time.Now()
		m.follow(ctx, j, g, w, interval, health)
		w.Stop()
		// A watch the API server (or a proxy) ends at once is not opened
		// again in a tight loop.
		if time.Since(opened) < interval {
			select {
			case <-ctx.Done():
			case <-time.After(interval):
			}
		}
	}
}

// staleWatchIntervals is how many intervals a watch may stay silent while
// an object of its group is not Current before it is opened again: a watch
// whose connection stalls (a proxy, a lost TCP peer) stays open and sends
// nothing, and the objects would otherwise be waited on until the timeout.
// The new watch starts with the objects as they are. A quiet watch that was
// fine costs one request per group and period, not one per object.
const staleWatchIntervals = 5

// follow records the group's objects as the watch sends them. Each
// interval, an object this watch has not shown (its labels were removed,
// or it was deleted, or changed while no watch was open) is read directly,
// and a StatefulSet or ReplicaSet still in progress is judged by its Pods
// too (judge.deep). follow returns when the watch ends, or when it was
// silent for staleWatchIntervals while an object of the group is not
// Current, for watchGroup to open it again.
func (m *Manager) follow(ctx context.Context, j *judge, g healthGroup, w watch.Interface, interval time.Duration, health *healthState) {
	last := map[object.ObjMetadata]*unstructured.Unstructured{}
	heard := time.Now()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			waiting := false
			for id := range g.ids {
				switch obj, seen := last[id]; {
				case !seen:
					m.read(ctx, j, g.gvk, id, health)
				case health.current(id):
				case podControllers[id.GroupKind]:
					health.set(j.deep(ctx, obj))
					waiting = true
				default:
					waiting = true
				}
			}
			if waiting && now.Sub(heard) >= staleWatchIntervals*interval {
				return
			}
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return
			}
			heard = time.Now()
			u, isObject := ev.Object.(*unstructured.Unstructured)
			if !isObject || ev.Type == watch.Bookmark {
				continue
			}
			id := object.UnstructuredToObjMetadata(u)
			switch {
			case !g.ids[id]:
			case ev.Type == watch.Deleted:
				// Deleted, or no longer selected: read it directly.
				delete(last, id)
				health.set(notFound(id))
			default:
				last[id] = u
				health.set(j.status(ctx, u))
			}
		}
	}
}

// isSettled is true when nothing more is to be waited for: every object is
// Current, or one has Failed (fail fast: it will not become Current).
func isSettled(statuses []*event.ResourceStatus) bool {
	allCurrent := true
	for _, rs := range statuses {
		switch rs.Status {
		case status.FailedStatus:
			return true
		case status.CurrentStatus:
		default:
			allCurrent = false
		}
	}
	return allCurrent
}

// describe formats an object's status for an error message:
// "<kind>/<namespace>/<name> status: '<status>'" then the kstatus message or
// the error that kept the status from being read (a CEL expression over a
// field not there yet, a forbidden read...).
func describe(rs *event.ResourceStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s status: '%s'", utils.FmtObjMetadata(rs.Identifier), rs.Status)
	if rs.Message != "" {
		fmt.Fprintf(&b, ": %s", rs.Message)
	}
	if rs.Error != nil {
		fmt.Fprintf(&b, ": %s", rs.Error)
	}
	return b.String()
}
