// Package apply applies one stage of a StageSet with server-side apply,
// records what it applied as an inventory, prunes what left the stage and
// gates the stage on the health of its objects (SPEC §4).
//
// It builds on fluxcd/pkg/ssa for apply and delete, and on kstatus (the
// fluxcd/cli-utils poller that ssa uses) plus fluxcd/pkg/runtime's CEL status
// readers for health.
package apply

import (
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/clusterreader"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"github.com/fluxcd/pkg/runtime/statusreaders"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// concurrency is how many objects are dry-run at once. The API server does
// the work; a small number keeps big stages fast without flooding it.
const concurrency = 4

// Manager applies, prunes and health-checks stages through one identity: the
// controller's own, or an impersonated one, depending on the client given to
// NewManager. It holds no state between calls and is safe for concurrent use.
type Manager struct {
	client       client.Client
	fieldManager string
	resources    *ssa.ResourceManager
}

// NewManager returns a Manager whose writes and health reads go through c,
// with fieldManager (the controller's "stageset-controller") as the
// server-side apply field manager.
//
// c should read straight from the API server (no cache): dry-runs and health
// checks compare against the live objects. The kstatus poller built here
// knows the built-in kinds and waits for Jobs to complete; CEL health checks
// differ per stage, so Wait builds a poller with them on each call (pollers
// are cheap and hold no connection).
func NewManager(c client.Client, fieldManager string) *Manager {
	rm := ssa.NewResourceManager(c, newPoller(c, nil), ssa.Owner{
		Field: fieldManager,
		Group: stagesetv1.GroupName,
	})
	rm.SetConcurrency(concurrency)
	return &Manager{client: c, fieldManager: fieldManager, resources: rm}
}

// newPoller returns a kstatus poller over c. CEL status readers come first,
// so a healthCheckExprs entry overrides what kstatus would say of its kind;
// Jobs count as healthy only once complete, like kustomize-controller. The
// direct cluster reader gets each object by name: an impersonated identity
// may be allowed to get objects but not to list their kind cluster-wide, which
// the default caching reader would need.
func newPoller(c client.Client, celReader func(meta.RESTMapper) engine.StatusReader) *polling.StatusPoller {
	mapper := c.RESTMapper()
	var readers []engine.StatusReader
	if celReader != nil {
		readers = append(readers, celReader(mapper))
	}
	readers = append(readers, statusreaders.NewCustomJobStatusReader(mapper))
	return polling.NewStatusPoller(c, mapper, polling.Options{
		CustomStatusReaders:  readers,
		ClusterReaderFactory: engine.ClusterReaderFactoryFunc(clusterreader.NewDirectClusterReader),
	})
}

// pollerFor returns the poller for a Wait call: the plain one without CEL
// health checks, else one that evaluates them. An expression that does not
// compile is an error of the stage spec.
func (m *Manager) pollerFor(exprs []kustomize.CustomHealthCheck) (*polling.StatusPoller, error) {
	if len(exprs) == 0 {
		return newPoller(m.client, nil), nil
	}
	newReader, err := cel.NewStatusReader(exprs)
	if err != nil {
		return nil, err
	}
	return newPoller(m.client, newReader), nil
}
