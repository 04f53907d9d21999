// Package impersonation builds the client a StageSet's writes and health
// reads go through: the controller's own identity, an impersonated service
// account (spec.serviceAccountName, else --default-service-account), and/or a
// remote cluster from spec.kubeConfig.
package impersonation

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Factory makes per-StageSet clients.
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
	cfg, err := f.ConfigFor(ctx, obj)
	if err != nil {
		return nil, err
	}
	return f.Client(cfg)
}

// ConfigFor returns the REST config acting for the StageSet: the remote
// cluster of spec.kubeConfig, else the controller's own, impersonating the
// StageSet's service account when it has one.
func (f *Factory) ConfigFor(ctx context.Context, obj *stagesetv1.StageSet) (*rest.Config, error) {
	cfg := rest.CopyConfig(f.Base)
	if ref := obj.Spec.KubeConfig; ref != nil {
		remote, err := f.remoteConfig(ctx, obj.Namespace, ref)
		if err != nil {
			return nil, err
		}
		cfg = remote
	}
	if sa := f.ServiceAccountFor(obj); sa != "" {
		cfg.Impersonate = rest.ImpersonationConfig{
			UserName: fmt.Sprintf("system:serviceaccount:%s:%s", obj.Namespace, sa),
		}
	}
	return cfg, nil
}

// Client returns an uncached client for a config of ConfigFor. Its REST
// mapper is dynamic, so kinds whose CRD a stage has just applied resolve.
func (f *Factory) Client(cfg *rest.Config) (client.Client, error) {
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: f.Scheme, Mapper: mapper, HTTPClient: httpClient})
}

// remoteConfig reads a kubeconfig from the Secret of spec.kubeConfig.secretRef
// (key "value" unless the reference names one).
func (f *Factory) remoteConfig(ctx context.Context, namespace string, ref *meta.KubeConfigReference) (*rest.Config, error) {
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
	cfg, err := clientcmd.RESTConfigFromKubeConfig(data)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig Secret %s: %w", key, err)
	}
	return cfg, nil
}
