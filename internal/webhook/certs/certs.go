// Package certs keeps the admission webhook's self-signed certificates
// (--webhook-cert-mode=self-signed): a CA and a serving certificate stored in
// one Secret of the controller's namespace, shared by every replica, the CA
// kept in the caBundle of the ValidatingWebhookConfiguration, and both
// renewed ahead of expiry by the leader while every replica reloads.
//
// Every write is a Create or an Update carrying the resourceVersion read:
// replicas racing to create or renew are ordered by the API server, and the
// loser re-reads and adopts what the winner wrote.
//
// In cert-manager mode this package is not used: controller-runtime's webhook
// server serves the files of webhook.Options.CertDir and reloads them
// through its own certwatcher.
package certs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// SecretType marks the Secret as this package's. A Secret of the configured
// name with another type was made by someone else and is never touched.
const SecretType corev1.SecretType = stagesetv1.GroupName + "/webhook-certificate"

// DefaultSecretName is the name of the certificate Secret.
const DefaultSecretName = "stageset-webhook-cert"

// ErrForeignSecret is wrapped by the error about a Secret of the configured
// name that this package did not create.
var ErrForeignSecret = errors.New("secret is not a webhook certificate Secret of the controller")

// Options configure a Manager. Client, Namespace, ServiceName,
// ServiceNamespace, WebhookConfigName, Validity and RenewBefore are required.
type Options struct {
	// Client writes the Secret and the ValidatingWebhookConfiguration.
	Client client.Client
	// Reader reads them live: it must not be a cache (mgr.GetAPIReader()),
	// since the manager's cache does not watch Secrets of this namespace
	// and a stale read would undo another replica's renewal.
	Reader client.Reader

	// Namespace and SecretName locate the Secret (SecretName defaults to
	// DefaultSecretName).
	Namespace  string
	SecretName string

	// ServiceName and ServiceNamespace name the Service in front of the
	// webhook; the serving certificate is for its four DNS names.
	ServiceName      string
	ServiceNamespace string

	// WebhookConfigName is the ValidatingWebhookConfiguration whose
	// webhooks get the CA bundle.
	WebhookConfigName string

	// Validity is the lifetime of a serving certificate, RenewBefore how
	// long before expiry it is renewed. CAValidity is the lifetime of a CA
	// (default 4×Validity): a CA renews with the same RenewBefore, so it
	// is replaced about once every 4 serving certificates, and each switch
	// keeps two CAs in caBundle for RenewBefore.
	Validity    time.Duration
	RenewBefore time.Duration
	CAValidity  time.Duration

	// CheckInterval is how often the leader checks expiry (default one
	// minute). A next CA is published in one pass and promoted in a later
	// one, so at least CheckInterval (RetryInitial after a failed pass)
	// passes between publishing a CA and serving a certificate it
	// signed: time for the API server to load the new caBundle.
	// ReloadInterval is how often every replica re-reads the Secret
	// (default 10 seconds).
	CheckInterval  time.Duration
	ReloadInterval time.Duration

	// RetryInitial and RetryMax bound the exponential backoff of failed
	// renewals (defaults 5 seconds and 5 minutes).
	RetryInitial time.Duration
	RetryMax     time.Duration

	// Failures counts failed renewal attempts of the leader
	// (metrics.Default().WebhookCertRenewalFailures()).
	Failures prometheus.Counter
	// Clock defaults to the real clock; tests set a fake one.
	Clock clock.Clock
	// Log defaults to the controller-runtime logger.
	Log logr.Logger
}

// Manager loads, creates, renews and serves the webhook certificate.
type Manager struct {
	opts     Options
	key      client.ObjectKey
	dnsNames []string

	current atomic.Pointer[tls.Certificate]

	// mu orders the passes of the renewer and the reloader of this process,
	// so that a reload never swaps in a Secret older than the renewer's.
	mu        sync.Mutex
	loadedRev string
}

// New checks the options, fills in defaults and returns a Manager. Call Init
// before the webhook server starts, then AddToManager.
func New(opts Options) (*Manager, error) {
	if opts.SecretName == "" {
		opts.SecretName = DefaultSecretName
	}
	if opts.CAValidity == 0 {
		opts.CAValidity = 4 * opts.Validity
	}
	defaults := []struct {
		d   *time.Duration
		def time.Duration
	}{{&opts.CheckInterval, time.Minute}, {&opts.ReloadInterval, 10 * time.Second}, {&opts.RetryInitial, 5 * time.Second}, {&opts.RetryMax, 5 * time.Minute}}
	for _, d := range defaults {
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.Log.GetSink() == nil {
		opts.Log = ctrl.Log.WithName("webhook-certs")
	}
	var errs []error
	if opts.Client == nil || opts.Reader == nil || opts.Failures == nil {
		errs = append(errs, errors.New("client, reader and failure counter are required"))
	}
	if opts.Namespace == "" || opts.ServiceName == "" || opts.ServiceNamespace == "" || opts.WebhookConfigName == "" {
		errs = append(errs, errors.New("namespace, service name, service namespace and webhook configuration name are required"))
	}
	if opts.RenewBefore <= 0 || opts.RenewBefore >= opts.Validity {
		errs = append(errs, fmt.Errorf("renew-before (%s) must be positive and shorter than the validity (%s)", opts.RenewBefore, opts.Validity))
	}
	// Two CA switches must not overlap: the previous CA must expire before
	// the next switch replaces it in the bundle.
	if opts.CAValidity <= 2*opts.RenewBefore || opts.CAValidity < opts.Validity {
		errs = append(errs, fmt.Errorf("the CA validity (%s) must exceed twice renew-before (%s) and the validity (%s)", opts.CAValidity, opts.RenewBefore, opts.Validity))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("webhook certificates: %w", err)
	}
	svc, ns := opts.ServiceName, opts.ServiceNamespace
	return &Manager{
		opts:     opts,
		key:      client.ObjectKey{Namespace: opts.Namespace, Name: opts.SecretName},
		dnsNames: []string{svc, svc + "." + ns, svc + "." + ns + ".svc", svc + "." + ns + ".svc.cluster.local"},
	}, nil
}

// DNSNames returns the names the serving certificate is for.
func (m *Manager) DNSNames() []string { return append([]string(nil), m.dnsNames...) }

// GetCertificate returns the current serving certificate; it is the
// tls.Config callback, so a renewed certificate is served from the next
// handshake on.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if c := m.current.Load(); c != nil {
		return c, nil
	}
	return nil, errors.New("no webhook serving certificate loaded yet")
}

// TLSOption sets GetCertificate on the webhook server's tls.Config, for
// webhook.Options.TLSOpts. With it set, controller-runtime starts no
// certwatcher of its own (webhook.DefaultServer.Start only builds one when
// GetCertificate is nil).
func (m *Manager) TLSOption(c *tls.Config) { c.GetCertificate = m.GetCertificate }

// Init loads the certificate from the Secret or creates it, repairs what
// cannot be served (expired, other DNS names) and puts the CA into caBundle.
// A foreign or unparsable Secret is an error: the controller cannot serve
// the webhook then, and says so rather than replacing someone's Secret.
func (m *Manager) Init(ctx context.Context) error {
	return m.pass(ctx, false)
}

// Renew is one attempt of the leader: renew what is due, publish the bundle.
// A failure is counted and logged.
func (m *Manager) Renew(ctx context.Context) error {
	err := m.pass(ctx, true)
	if err != nil && ctx.Err() == nil {
		m.opts.Failures.Inc()
		m.opts.Log.Error(err, "webhook certificate renewal failed", "secret", m.key)
	}
	return err
}

// Reload reads the Secret and serves its certificate when it changed.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	secret, mat, err := m.read(ctx)
	if err != nil {
		return err
	}
	m.serve(secret, mat)
	return nil
}

// serve swaps in the serving certificate of a Secret read or written.
// Callers hold mu.
func (m *Manager) serve(secret *corev1.Secret, mat *material) {
	if secret.ResourceVersion == m.loadedRev {
		return
	}
	m.current.Store(mat.tlsCertificate())
	m.loadedRev = secret.ResourceVersion
	m.opts.Log.Info("serving webhook certificate", "secret", m.key, "notAfter", mat.serving.cert.NotAfter, "ca", mat.ca.cert.Subject.CommonName)
}
