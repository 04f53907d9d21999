package impersonation

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// maxRemotes bounds the remote clients kept. Each holds an HTTP client with
// its idle connections and the discovery data of its cluster; past the
// bound the least recently used is rebuilt on its next run, as every run
// did before the cache.
const maxRemotes = 256

// remoteKey names a remote client: one per kubeconfig (Secret and key) and
// identity. The Secret's resourceVersion is kept in the entry, not the key,
// so a new version replaces the client built from the old one.
type remoteKey struct {
	namespace, name, dataKey string
	impersonate              string
}

// remoteClient is a client built from one version of a kubeconfig Secret.
type remoteClient struct {
	resourceVersion string
	config          *rest.Config
	client          client.Client
	http            closeIdler
}

// closeIdler is the part of *http.Client a dropped entry needs.
type closeIdler interface{ CloseIdleConnections() }

// remote returns the client of the kubeconfig in the Secret of
// spec.kubeConfig.secretRef (key "value" unless the reference names one),
// building it when the Secret is new or changed. The Secret is read at each
// call, so a changed kubeconfig takes effect at the next run.
func (f *Factory) remote(ctx context.Context, namespace string, ref *meta.KubeConfigReference, impersonate string) (*remoteClient, error) {
	if ref.SecretRef == nil {
		return nil, fmt.Errorf("spec.kubeConfig: only secretRef is supported")
	}
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: namespace, Name: ref.SecretRef.Name}
	if err := f.Reader.Get(ctx, key, secret); err != nil {
		return nil, fmt.Errorf("reading kubeconfig Secret %s: %w", key, err)
	}
	dataKey := ref.SecretRef.Key
	if dataKey == "" {
		dataKey = "value"
	}
	data, ok := secret.Data[dataKey]
	if !ok {
		return nil, fmt.Errorf("kubeconfig Secret %s has no key %q", key, dataKey)
	}

	cacheKey := remoteKey{namespace: namespace, name: key.Name, dataKey: dataKey, impersonate: impersonate}
	cache := f.remoteCache()
	if v, ok := cache.Get(cacheKey); ok {
		if r := v.(*remoteClient); r.resourceVersion == secret.ResourceVersion {
			return r, nil
		}
	}

	opts := f.KubeConfigOptions
	opts.UserAgent = f.userAgent()
	cfg, err := remoteConfig(ctx, data, opts, f.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s: %w", key, err)
	}
	if impersonate != "" {
		cfg.Impersonate = rest.ImpersonationConfig{UserName: impersonate}
	}
	c, httpClient, err := f.newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s: %w", key, err)
	}
	r := &remoteClient{resourceVersion: secret.ResourceVersion, config: cfg, client: c, http: httpClient}
	// A replaced entry is not evicted: close its idle connections here.
	// Two runs building the same entry at once both succeed; the last kept
	// wins, and the other's client serves only its own run.
	if v, ok := cache.Get(cacheKey); ok {
		v.(*remoteClient).http.CloseIdleConnections()
	}
	cache.Add(cacheKey, r)
	return r, nil
}

// remoteCache returns the cache of remote clients, made on first use so a
// Factory literal needs no constructor.
func (f *Factory) remoteCache() *lru.Cache {
	f.remotesOnce.Do(func() {
		f.remotes = lru.NewWithEvictionFunc(maxRemotes, func(_ lru.Key, v any) {
			v.(*remoteClient).http.CloseIdleConnections()
		})
	})
	return f.remotes
}
