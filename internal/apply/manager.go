// Package apply applies one stage of a StageSet with server-side apply,
// records what it applied as an inventory, prunes what left the stage and
// gates the stage on the health of its objects (SPEC §4).
//
// It builds on fluxcd/pkg/ssa for apply and delete, and on kstatus's rules
// (fluxcd/cli-utils) plus fluxcd/pkg/runtime's CEL status readers for
// health, with watches of its own (health.go).
package apply

import (
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/clusterreader"
	"github.com/fluxcd/cli-utils/pkg/kstatus/polling/engine"
	"github.com/fluxcd/pkg/runtime/statusreaders"
	"github.com/fluxcd/pkg/ssa"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// concurrency is how many objects are dry-run, or applied, at once. The API
// server does the work; a small number keeps big stages fast without
// flooding it.
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
// checks compare against the live objects. When c can watch
// (client.WithWatch), Wait follows a stage's objects with watches.
func NewManager(c client.Client, fieldManager string) *Manager {
	rm := ssa.NewResourceManager(c, newPoller(c), ssa.Owner{
		Field: fieldManager,
		Group: stagesetv1.GroupName,
	})
	rm.SetConcurrency(concurrency)
	return &Manager{client: c, fieldManager: fieldManager, resources: rm}
}

// newPoller returns the kstatus poller ssa.ResourceManager is built with.
// Nothing here calls ssa's waits (Wait has its own engine, see health.go);
// it reads objects by name, should one ever be called: an impersonated
// identity may be allowed to get objects but not to list their kind
// cluster-wide, which the default caching reader would need.
func newPoller(c client.Client) *polling.StatusPoller {
	mapper := c.RESTMapper()
	return polling.NewStatusPoller(c, mapper, polling.Options{
		CustomStatusReaders:  []engine.StatusReader{statusreaders.NewCustomJobStatusReader(mapper)},
		ClusterReaderFactory: engine.ClusterReaderFactoryFunc(clusterreader.NewDirectClusterReader),
	})
}
