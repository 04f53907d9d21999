package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/integrity"
)

// loadIntegrityKey loads or creates the key that authenticates snapshots
// and migration ledgers. secret is "<name>", in the controller's own
// namespace ($RUNTIME_NAMESPACE), or "<namespace>/<name>". The namespace must
// be one tenants cannot write Secrets in: whoever can, can forge both.
func loadIntegrityKey(ctx context.Context, mgr ctrl.Manager, secret string) (*integrity.Key, error) {
	namespace, name, found := strings.Cut(secret, "/")
	if !found {
		namespace, name = os.Getenv(runtimectrl.EnvRuntimeNamespace), secret
		if namespace == "" {
			return nil, fmt.Errorf("--integrity-key-secret=%s names no namespace and the %s environment variable is not set", secret, runtimectrl.EnvRuntimeNamespace)
		}
	}
	if namespace == "" || name == "" {
		return nil, fmt.Errorf("--integrity-key-secret=%q must be <name> or <namespace>/<name>", secret)
	}
	// The manager's cache is not started yet: read through the API reader.
	key, err := integrity.LoadOrCreate(ctx, mgr.GetClient(), mgr.GetAPIReader(), ctrlclient.ObjectKey{Namespace: namespace, Name: name})
	if err != nil {
		return nil, fmt.Errorf("loading the integrity key: %w", err)
	}
	return key, nil
}
