package impersonation

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// defaultRemoteTimeout bounds each request to a remote cluster when
// KubeConfigOptions.Timeout is nil, as fluxcd/pkg/runtime/client does.
const defaultRemoteTimeout = 30 * time.Second

// remoteConfig turns the kubeconfig a tenant stored in a Secret into the
// REST config of a remote client. The kubeconfig is the tenant's, and the
// controller runs it in its own process: whatever would act outside the
// connection to the named server with the credentials given inline (run a
// program, read the controller's files, choose where the connection goes,
// skip server verification) is refused before any connection is made,
// with a message naming the entry and the flag that would allow it.
func remoteConfig(ctx context.Context, data []byte, opts runtimeclient.KubeConfigOptions, client runtimeclient.Options) (*rest.Config, error) {
	raw, err := clientcmd.Load(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the kubeconfig: %w", err)
	}
	if err := checkKubeConfig(raw, opts); err != nil {
		return nil, err
	}
	in, err := clientcmd.NewDefaultClientConfig(*raw, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig: %w", err)
	}
	if opts.Timeout == nil {
		timeout := defaultRemoteTimeout
		opts.Timeout = &timeout
	}
	// KubeConfig copies only what it allows into a fresh config, and asks
	// the server whether it enforces priority and fairness (then the client
	// has no rate limiter, as the controller's own): bound that request too.
	pingCtx, cancel := context.WithTimeout(ctx, *opts.Timeout)
	defer cancel()
	out := runtimeclient.KubeConfig(pingCtx, in, opts)
	if out.QPS == 0 {
		out.QPS, out.Burst = client.QPS, client.Burst
	}
	return out, nil
}

// checkKubeConfig refuses what runtimeclient.KubeConfig would not honour
// or should not be asked to. KubeConfig drops an exec plugin, an auth
// provider and insecure-skip-tls-verify silently: the client would then
// connect anonymously or fail verification, and the tenant would read a
// 401 or a TLS error instead of why. It keeps a proxy-url. And it never
// sees file paths: clientcmd has already read a tokenFile into the token
// KubeConfig copies, so a kubeconfig naming the controller's own service
// account token would send it to the tenant's server. ValidateKubeConfig
// refuses token, certificate and key files.
func checkKubeConfig(cfg *clientcmdapi.Config, opts runtimeclient.KubeConfigOptions) error {
	if err := runtimeclient.ValidateKubeConfig(cfg); err != nil {
		return err
	}
	var errs []error
	for _, name := range sortedKeys(cfg.Clusters) {
		cluster := cfg.Clusters[name]
		// A proxy (http, https or socks5) makes every request, the
		// credentials in it included, go through a host the kubeconfig
		// chooses and that the server field does not show.
		if cluster.ProxyURL != "" {
			errs = append(errs, fmt.Errorf("cluster %q sets a proxy-url, which is not allowed", name))
		}
		if cluster.InsecureSkipTLSVerify && !opts.InsecureTLS {
			errs = append(errs, fmt.Errorf("cluster %q sets insecure-skip-tls-verify, which is refused unless the controller runs with --insecure-kubeconfig-tls", name))
		}
	}
	for _, name := range sortedKeys(cfg.AuthInfos) {
		user := cfg.AuthInfos[name]
		if user.Exec != nil && !opts.InsecureExecProvider {
			errs = append(errs, fmt.Errorf("user %q runs an exec plugin (%q), which is refused unless the controller runs with --insecure-kubeconfig-exec", name, user.Exec.Command))
		}
		// Auth provider plugins refresh tokens from files and endpoints of
		// their own and write them back; KubeConfig keeps none of them.
		if user.AuthProvider != nil {
			errs = append(errs, fmt.Errorf("user %q uses the auth-provider %q, which is not supported: embed a token or a client certificate", name, user.AuthProvider.Name))
		}
		// The remote identity is the kubeconfig's credentials, impersonating
		// the StageSet's service account when it has one; KubeConfig drops
		// an "as" of the kubeconfig, which would act as someone else silently.
		if user.Impersonate != "" || len(user.ImpersonateGroups) > 0 || user.ImpersonateUID != "" || len(user.ImpersonateUserExtra) > 0 {
			errs = append(errs, fmt.Errorf("user %q impersonates (as, as-groups, as-uid or as-user-extra), which is not supported: use spec.serviceAccountName", name))
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
