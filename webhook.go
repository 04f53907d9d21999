package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"time"

	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/validation"
	stagesetwebhook "github.com/stageset/stageset-controller/internal/webhook"
	"github.com/stageset/stageset-controller/internal/webhook/certs"
)

// admissionWebhook is the validating admission webhook of SPEC §10: its
// server, and what registers its handler and its certificate's upkeep with
// the manager.
type admissionWebhook struct {
	server webhook.Server
	certs  *certs.Manager // nil in cert-manager mode
}

// newAdmissionWebhook prepares the webhook server. In self-signed mode the
// certificate is loaded or created before the server starts, so that no
// handshake finds none: the CA and serving certificate live in one Secret
// in the controller's namespace, and the CA is written into the caBundle of
// --webhook-config-name. In cert-manager mode the certificate mounted at
// --webhook-cert-dir is served and reloaded when it changes.
func newAdmissionWebhook(ctx context.Context, restConfig *rest.Config, sch *runtime.Scheme, opts *options) (*admissionWebhook, error) {
	serverOpts := webhook.Options{Host: opts.webhookHost, Port: opts.webhookPort}
	if opts.webhookCertMode == certModeCertManager {
		serverOpts.CertDir = opts.webhookCertDir
		return &admissionWebhook{server: webhook.NewServer(serverOpts)}, nil
	}

	namespace := cmp.Or(os.Getenv(runtimectrl.EnvRuntimeNamespace), opts.webhookServiceNS)
	if namespace == "" {
		return nil, fmt.Errorf("--webhook-cert-mode=self-signed keeps its certificate in the controller's namespace: set the %s environment variable or --webhook-service-namespace", runtimectrl.EnvRuntimeNamespace)
	}
	// The manager's client is not started yet: the certificate is needed
	// before it is.
	live, err := ctrlclient.New(restConfig, ctrlclient.Options{Scheme: sch})
	if err != nil {
		return nil, fmt.Errorf("creating the webhook certificate client: %w", err)
	}
	manager, err := certs.New(certs.Options{
		Client:            live,
		Reader:            live,
		Namespace:         namespace,
		ServiceName:       opts.webhookServiceName,
		ServiceNamespace:  cmp.Or(opts.webhookServiceNS, namespace),
		WebhookConfigName: opts.webhookConfigName,
		Validity:          opts.webhookCertValidity,
		RenewBefore:       opts.webhookCertRenewBefore,
		// Checked and reloaded often enough that a short renew-before
		// window is never missed; at most every minute and 10 seconds.
		CheckInterval:  min(time.Minute, opts.webhookCertRenewBefore/4),
		ReloadInterval: min(10*time.Second, opts.webhookCertRenewBefore/4),
		Failures:       metrics.Default().WebhookCertRenewalFailures(),
		Log:            ctrl.Log.WithName("webhook-certs"),
	})
	if err != nil {
		return nil, err
	}
	if err := manager.Init(ctx); err != nil {
		return nil, fmt.Errorf("loading the webhook certificate: %w", err)
	}
	serverOpts.TLSOpts = []func(*tls.Config){manager.TLSOption}
	return &admissionWebhook{server: webhook.NewServer(serverOpts), certs: manager}, nil
}

// register adds the validator, the certificate's upkeep (the leader renews,
// every replica reloads) and a readiness check to the manager.
func (w *admissionWebhook) register(mgr ctrl.Manager, opts validation.Options) error {
	if err := stagesetwebhook.Setup(mgr, opts); err != nil {
		return fmt.Errorf("setting up the admission webhook: %w", err)
	}
	if w.certs != nil {
		if err := w.certs.AddToManager(mgr); err != nil {
			return err
		}
	}
	return mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker())
}
