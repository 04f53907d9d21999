// Package impersonation builds the client a StageSet's writes and health
// reads go through: the controller's own identity, an impersonated service
// account (spec.serviceAccountName, else --default-service-account), and/or a
// remote cluster from spec.kubeConfig.
package impersonation

import (
	"context"
	"fmt"
	"sync"
	"time"

	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/lru"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/version"
)

// Factory makes per-StageSet clients. Its zero cache is ready to use; the
// option fields are read at each call, so set them before the first.
type Factory struct {
	// Base is the controller's own REST config.
	Base *rest.Config
	// Scheme of the clients.
	Scheme *runtime.Scheme
	// Reader reads kubeconfig Secrets in the StageSet's namespace.
	Reader client.Reader
	// DefaultServiceAccount is impersonated for StageSets that name none
	// (--default-service-account); empty keeps the controller's identity.
	DefaultServiceAccount string
	// KubeConfigOptions decide what a remote kubeconfig may use
	// (--insecure-kubeconfig-exec, --insecure-kubeconfig-tls) and sets the
	// remote clients' timeout (30s when nil) and user agent
	// (stageset-controller/<version> when empty).
	KubeConfigOptions runtimeclient.KubeConfigOptions
	// ClientOptions hold the QPS and burst of remote clients
	// (--kube-api-qps, --kube-api-burst), as for the controller's own: they
	// apply where the remote API server has no priority and fairness.
	ClientOptions runtimeclient.Options

	remotesOnce sync.Once
	// remotes holds the remote clients built, by Secret, key and identity.
	remotes    *lru.Cache
	localsOnce sync.Once
	// locals holds the clients of the controller's cluster, by identity.
	locals *lru.Cache
	// now is the clock of the locals' expiry; tests set it.
	now func() time.Time
}

// ServiceAccountFor returns the service account a StageSet acts as, "" for
// the controller's own identity.
func (f *Factory) ServiceAccountFor(obj *stagesetv1.StageSet) string {
	if obj.Spec.ServiceAccountName != "" {
		return obj.Spec.ServiceAccountName
	}
	return f.DefaultServiceAccount
}

// ClientFor returns an uncached client acting for the StageSet.
func (f *Factory) ClientFor(ctx context.Context, obj *stagesetv1.StageSet) (client.Client, error) {
	c, _, err := f.For(ctx, obj)
	return c, err
}

// For returns an uncached client acting for the StageSet and its REST
// config (a copy the caller may keep): the remote cluster of
// spec.kubeConfig, else the controller's own, impersonating the StageSet's
// service account when it has one. A remote client is built once per
// kubeconfig Secret version and identity, a client of the controller's
// cluster once per identity (local.go), then reused.
func (f *Factory) For(ctx context.Context, obj *stagesetv1.StageSet) (client.Client, *rest.Config, error) {
	impersonate := ""
	if sa := f.ServiceAccountFor(obj); sa != "" {
		impersonate = fmt.Sprintf("system:serviceaccount:%s:%s", obj.Namespace, sa)
	}
	if ref := obj.Spec.KubeConfig; ref != nil {
		r, err := f.remote(ctx, obj.Namespace, ref, impersonate)
		if err != nil {
			return nil, nil, err
		}
		return r.client, rest.CopyConfig(r.config), nil
	}
	l, err := f.local(impersonate)
	if err != nil {
		return nil, nil, err
	}
	return l.client, rest.CopyConfig(l.config), nil
}

// newClient returns an uncached client for cfg, and the HTTP client under
// it. Its REST mapper is dynamic, so kinds whose CRD a stage has just
// applied resolve.
func (f *Factory) newClient(cfg *rest.Config) (client.Client, closeIdler, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, nil, err
	}
	// With watch: the health gate follows a stage's objects with watches.
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: f.Scheme, Mapper: mapper, HTTPClient: httpClient})
	if err != nil {
		return nil, nil, err
	}
	return c, httpClient, nil
}

// userAgent is the user agent of remote clients, so the remote cluster's
// audit log names the controller.
func (f *Factory) userAgent() string {
	if f.KubeConfigOptions.UserAgent != "" {
		return f.KubeConfigOptions.UserAgent
	}
	return "stageset-controller/" + version.Version
}
