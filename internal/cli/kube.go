package cli

import (
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/scheme"
)

// kubeOptions are the kubectl-style connection flags.
type kubeOptions struct {
	kubeconfig string
	context    string
	namespace  string
}

func (k *kubeOptions) bindFlags(fs *pflag.FlagSet) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config).")
	fs.StringVar(&k.context, "context", "", "The kubeconfig context to use.")
	fs.StringVarP(&k.namespace, "namespace", "n", "", "The namespace (default: the context's namespace, else default).")
}

// client returns a client for the chosen cluster and the namespace to use.
func (k *kubeOptions) client() (client.Client, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	cfg := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context})
	restConfig, err := cfg.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns := k.namespace
	if ns == "" {
		if ns, _, err = cfg.Namespace(); err != nil {
			return nil, "", err
		}
	}
	c, err := client.New(restConfig, client.Options{Scheme: scheme.New()})
	return c, ns, err
}
