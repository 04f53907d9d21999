package apply

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/collector"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/event"
	"github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/ssa/utils"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// DefaultWaitInterval is the poll interval when WaitOptions.Interval is 0.
const DefaultWaitInterval = time.Second

// WaitOptions of one stage's health gate.
type WaitOptions struct {
	// Timeout bounds the wait; the default stage timeout
	// (stagesetv1.DefaultTimeout) when 0.
	Timeout time.Duration
	// Interval is the poll interval; DefaultWaitInterval when 0.
	Interval time.Duration
	// HealthChecks are extra objects (stage.healthChecks), outside the stage
	// or not, that must be healthy too.
	HealthChecks []meta.NamespacedObjectKindReference
	// DefaultNamespace is the namespace of HealthChecks entries that name
	// none: the StageSet's namespace.
	DefaultNamespace string
	// Exprs are CEL health checks (stage.healthCheckExprs) for kinds kstatus
	// cannot judge; they override kstatus for their kinds.
	Exprs []kustomize.CustomHealthCheck
	// Objects is stage.wait: include the applied objects themselves.
	Objects bool
	// Live are the objects as Apply last saw them: those Current there are
	// not polled (see LiveObjects).
	Live *LiveObjects
}

// Wait blocks until every applied object (with opts.Objects) and every
// health check is Current (kstatus, or the CEL expressions of its kind). It
// fails fast when one is Failed (kstatus Failed, or a CEL failed expression
// true) and fails at the timeout; the error lists each object that is not
// ready with its status and kstatus message, e.g.
//
//	timeout waiting for: [Deployment/ns/web status: 'InProgress': Available: 0/1]
//
// A CEL expression over a field that does not exist yet yields Unknown, not
// Failed, so Wait keeps polling, as kustomize-controller does. When ctx is
// cancelled (a new revision arrived), Wait returns ctx's error at once.
func (m *Manager) Wait(ctx context.Context, objects object.ObjMetadataSet, opts WaitOptions) error {
	set := m.toPoll(objects, opts)
	if len(set) == 0 {
		return nil
	}
	poller, err := m.pollerFor(opts.Exprs)
	if err != nil {
		return fmt.Errorf("invalid health check expression: %w", err)
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultWaitInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = stagesetv1.DefaultTimeout
	}
	return waitForSet(ctx, poller, set, opts.Interval, opts.Timeout)
}

// Settled tells whether Wait would return at once, without a request: every
// object to wait for is Current as Apply last saw it.
func (m *Manager) Settled(objects object.ObjMetadataSet, opts WaitOptions) bool {
	return len(m.toPoll(objects, opts)) == 0
}

// toPoll is the set Wait polls: the applied objects (opts.Objects) and the
// health checks, less those Current as last seen.
func (m *Manager) toPoll(objects object.ObjMetadataSet, opts WaitOptions) object.ObjMetadataSet {
	set := object.ObjMetadataSet{}
	if opts.Objects {
		set = set.Union(objects)
	}
	set = set.Union(m.healthCheckSet(opts.HealthChecks, opts.DefaultNamespace))
	return set.Diff(opts.Live.current(set, opts.Exprs))
}

// healthCheckSet turns health check references into identities. A reference
// without a namespace gets the default one, unless its kind is cluster-scoped
// (an identity with a namespace would never match the live object). A kind
// the cluster does not know keeps the namespace; the poller reports it.
func (m *Manager) healthCheckSet(refs []meta.NamespacedObjectKindReference, defaultNamespace string) object.ObjMetadataSet {
	set := make(object.ObjMetadataSet, 0, len(refs))
	for _, ref := range refs {
		gvk := schema.FromAPIVersionAndKind(ref.APIVersion, ref.Kind)
		ns := ref.Namespace
		if ns == "" {
			ns = defaultNamespace
		}
		if mapping, err := m.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err == nil &&
			mapping.Scope.Name() == apimeta.RESTScopeNameRoot {
			ns = ""
		}
		set = append(set, object.ObjMetadata{GroupKind: gvk.GroupKind(), Name: ref.Name, Namespace: ns})
	}
	return set
}

// waitForSet polls the set until it settles (all Current, or one Failed), the
// timeout passes or ctx is cancelled. It is ssa's WaitForSetWithContext with
// fail-fast, plus kstatus messages in the error: ssa reports only the status,
// and "InProgress" alone does not tell a user why a stage is stuck.
func waitForSet(ctx context.Context, poller *polling.StatusPoller, set object.ObjMetadataSet, interval, timeout time.Duration) error {
	pollCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	statuses := collector.NewResourceStatusCollector(set)
	// final is the observation that settled the wait, kept because events
	// polled before the poller stops could change the collector again. Only
	// the listener goroutine writes it, before done is closed.
	var final []*event.ResourceStatus
	done := statuses.ListenWithObserver(poller.Poll(pollCtx, set, polling.PollOptions{PollInterval: interval}),
		collector.ObserverFunc(func(c *collector.ResourceStatusCollector, _ event.Event) {
			if final != nil {
				return
			}
			if observed := c.LatestObservation().ResourceStatuses; isSettled(observed) {
				final = observed
				cancel()
			}
		}))
	var pollErr error
	for r := range done {
		if pollErr == nil {
			pollErr = r.Err
		}
	}

	if final == nil {
		// Cancelled from outside: the caller no longer cares which objects
		// were ready. A deadline of ctx (the stage budget) is a timeout like
		// ours, and gets the list of what was not ready.
		if errors.Is(ctx.Err(), context.Canceled) {
			return ctx.Err()
		}
		final = statuses.LatestObservation().ResourceStatuses
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
	case len(notReady) > 0 && (errors.Is(pollCtx.Err(), context.DeadlineExceeded) || isDeadlineError(pollErr)):
		return fmt.Errorf("timeout waiting for: [%s]", strings.Join(notReady, ", "))
	case len(notReady) > 0 && pollErr != nil:
		return fmt.Errorf("health check stopped before the objects were ready: [%s]: %w", strings.Join(notReady, ", "), pollErr)
	case len(notReady) > 0:
		return fmt.Errorf("health check stopped before the objects were ready: [%s]", strings.Join(notReady, ", "))
	}
	return nil
}

// isDeadlineError tells whether the poller stopped because the deadline was
// about to pass: client-go's rate limiter refuses to wait past a deadline
// with an error of its own, which has no type to match.
func isDeadlineError(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(err.Error(), "would exceed context deadline"))
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
