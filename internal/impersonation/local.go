package impersonation

import (
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Clients of the controller's own cluster are kept per identity (its own,
// or an impersonated service account) and shared by every run acting as
// it: a new HTTP client and a new REST mapper per run cost each run the
// discovery of every API group it touches.
const (
	// maxLocals bounds the identities kept; past it the least recently
	// used is rebuilt on its next run.
	maxLocals = 256
	// localTTL is how long a client, and the API discovery its REST
	// mapper holds, serves. The mapper finds kinds added since on its own
	// (it reloads a group on a miss), but not versions the API server
	// stopped serving: rebuilding now and then bounds how long such a
	// stale mapping lasts.
	localTTL = 10 * time.Minute
)

// localClient is a shared client of one identity.
type localClient struct {
	built  time.Time
	config *rest.Config
	client client.Client
}

// local returns the shared client acting as impersonate ("" for the
// controller's own identity), building it when there is none or it
// expired.
func (f *Factory) local(impersonate string) (*localClient, error) {
	f.localsOnce.Do(func() { f.locals = lru.New(maxLocals) })
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	if v, ok := f.locals.Get(impersonate); ok {
		if l := v.(*localClient); now().Sub(l.built) < localTTL {
			return l, nil
		}
	}
	cfg := rest.CopyConfig(f.Base)
	if impersonate != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: impersonate}
	}
	// The HTTP client is not closed when an entry goes: client-go shares
	// one transport between configs with the same TLS settings, the
	// impersonating ones included, so its connections serve the others.
	c, _, err := f.newClient(cfg)
	if err != nil {
		return nil, err
	}
	// Two runs building the same entry at once both succeed; the last
	// one kept serves the runs after them.
	l := &localClient{built: now(), config: cfg, client: c}
	f.locals.Add(impersonate, l)
	return l, nil
}
