package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"github.com/spf13/pflag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/source"
)

// kubeOptions are the connection flags of kubectl and flux (--kubeconfig,
// --context, -n, --as, --as-group, --server, --token, ...), from
// k8s.io/cli-runtime so that they mean exactly what they mean there.
type kubeOptions struct {
	flags *genericclioptions.ConfigFlags
	// restConfig, when set, replaces the flags (tests).
	restConfig *rest.Config
}

func newKubeOptions() *kubeOptions {
	return &kubeOptions{flags: genericclioptions.NewConfigFlags(true)}
}

func (k *kubeOptions) bindFlags(fs *pflag.FlagSet) {
	k.flags.AddFlags(fs)
}

// config returns the REST config of the chosen cluster.
func (k *kubeOptions) config() (*rest.Config, error) {
	if k.restConfig != nil {
		return rest.CopyConfig(k.restConfig), nil
	}
	cfg, err := k.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to talk to: %w", err)
	}
	// The CLI lists and watches; the client-go default (5 QPS) would make a
	// large `get -A` or `tree --health` crawl.
	cfg.QPS, cfg.Burst = 50, 100
	return cfg, nil
}

// namespace is -n, else the kubeconfig context's namespace, else default.
func (k *kubeOptions) namespace() (string, error) {
	ns, _, err := k.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the kubeconfig: %w", err)
	}
	return ns, nil
}

// client returns a client for the chosen cluster and the namespace to use.
func (k *kubeOptions) client() (client.Client, string, error) {
	cfg, err := k.config()
	if err != nil {
		return nil, "", err
	}
	ns, err := k.namespace()
	if err != nil {
		return nil, "", err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, "", explain(err)
	}
	return c, ns, nil
}

// stageSet returns a client and the StageSet called name in the namespace
// of the flags.
func (k *kubeOptions) stageSet(ctx context.Context, name string) (client.Client, *stagesetv1.StageSet, error) {
	c, ns, err := k.client()
	if err != nil {
		return nil, nil, err
	}
	obj, err := getStageSet(ctx, c, client.ObjectKey{Namespace: ns, Name: name})
	return c, obj, err
}

// unreachable tells whether err says that no connection to a server could
// be made.
func unreachable(err error) bool {
	var urlErr *url.Error
	var netErr *net.OpError
	return errors.As(err, &urlErr) || errors.As(err, &netErr)
}

// explain turns the errors every command can meet into one readable line:
// an unreachable cluster, missing rights (the API server's message names
// the user, the verb and the resource), a timeout.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var artifactErr *source.ArtifactError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &artifactErr):
		// A download from source-controller's storage, not a request to
		// the API server: its own message says what failed.
		return err
	case apierrors.IsForbidden(err):
		return fmt.Errorf("permission denied: %w", err)
	case unreachable(err):
		return fmt.Errorf("cannot reach the cluster: %w", err)
	}
	return err
}
