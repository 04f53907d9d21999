package apply

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
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
	// not waited for (see LiveObjects).
	Live *LiveObjects
	// Selector is the labels every applied object of the stage carries
	// (Owner.Labels): they are then followed with watches (see health.go).
	Selector map[string]string
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
// Failed, so Wait keeps waiting, as kustomize-controller does. When ctx is
// cancelled (a new revision arrived), Wait returns ctx's error at once.
func (m *Manager) Wait(ctx context.Context, objects object.ObjMetadataSet, opts WaitOptions) error {
	j, err := newJudge(m.client, m.client.RESTMapper(), opts.Exprs)
	if err != nil {
		return fmt.Errorf("invalid health check expression: %w", err)
	}
	set := m.toWait(ctx, objects, opts, j)
	if len(set) == 0 {
		return nil
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultWaitInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = stagesetv1.DefaultTimeout
	}
	var watched object.ObjMetadataSet
	if opts.Objects {
		watched = objects
	}
	return m.waitFor(ctx, j, set, watched, opts.Selector, opts.Interval, opts.Timeout)
}

// Settled tells whether Wait would return at once, without a request: every
// object to wait for is Current as Apply last saw it.
func (m *Manager) Settled(ctx context.Context, objects object.ObjMetadataSet, opts WaitOptions) bool {
	j, err := newJudge(m.client, m.client.RESTMapper(), opts.Exprs)
	return err == nil && len(m.toWait(ctx, objects, opts, j)) == 0
}

// toWait is the set Wait waits for: the applied objects (opts.Objects) and
// the health checks, less those Current as last seen.
func (m *Manager) toWait(ctx context.Context, objects object.ObjMetadataSet, opts WaitOptions, j *judge) object.ObjMetadataSet {
	set := object.ObjMetadataSet{}
	if opts.Objects {
		set = set.Union(objects)
	}
	set = set.Union(m.healthCheckSet(opts.HealthChecks, opts.DefaultNamespace))
	return set.Diff(opts.Live.current(ctx, set, j))
}

// healthCheckSet turns health check references into identities. A reference
// without a namespace gets the default one, unless its kind is cluster-scoped
// (an identity with a namespace would never match the live object). A kind
// the cluster does not know keeps the namespace; Wait reports it.
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
