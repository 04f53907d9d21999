package main

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/fluxcd/pkg/runtime/acl"
	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/features"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/logger"

	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/source"
)

// options holds every command-line flag of the controller (SPEC §10): the
// fluxcd/pkg/runtime option bundles plus the controller's own flags.
type options struct {
	// Endpoints.
	metricsAddr string
	healthAddr  string
	eventsAddr  string

	// Reconciliation.
	concurrent            int
	requeueDependency     time.Duration
	defaultServiceAccount string
	runbookBaseURL        string
	allowedActionHosts    []string
	httpRetry             int
	integrityKeySecret    string
	maxObjectsPerStage    int

	// Admission webhook.
	enableWebhook          bool
	enablePprof            bool
	webhookPort            int
	webhookCertMode        string
	webhookCertDir         string
	webhookCertValidity    time.Duration
	webhookCertRenewBefore time.Duration
	webhookServiceName     string
	webhookServiceNS       string
	webhookConfigName      string
	// webhookHost is the address the webhook server binds to: every
	// interface in a pod. Not a flag: tests set it to loopback.
	webhookHost string

	printVersion bool

	// fluxcd/pkg/runtime bundles.
	clientOptions         runtimeclient.Options
	kubeConfigOptions     runtimeclient.KubeConfigOptions
	logOptions            logger.Options
	leaderElectionOptions leaderelection.Options
	rateLimiterOptions    runtimectrl.RateLimiterOptions
	watchOptions          runtimectrl.WatchOptions
	intervalJitterOptions jitter.IntervalOptions
	aclOptions            acl.Options
	featureGates          features.FeatureGates
}

func newOptions() *options {
	return &options{}
}

// Webhook certificate modes.
const (
	certModeSelfSigned  = "self-signed"
	certModeCertManager = "cert-manager"
)

func (o *options) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "The address the Prometheus metrics endpoint binds to.")
	fs.StringVar(&o.healthAddr, "health-probe-bind-address", ":8081", "The address the liveness and readiness probes bind to.")
	fs.BoolVar(&o.enablePprof, "enable-pprof", false, "Serve the Go profiler (pprof) under /debug/pprof/ on the metrics listener.")
	fs.StringVar(&o.eventsAddr, "events-addr", "", "The address of the notification-controller event receiver; empty sends Kubernetes Events only.")

	fs.IntVar(&o.concurrent, "concurrent", 4, "The number of StageSets reconciled in parallel.")
	fs.DurationVar(&o.requeueDependency, "requeue-dependency", 30*time.Second, "The interval at which a StageSet waiting on a dependency or a source is checked again.")
	fs.StringVar(&o.defaultServiceAccount, "default-service-account", "", "The service account impersonated for StageSets that name none; set it to enforce impersonation in multi-tenant clusters.")
	fs.StringVar(&o.runbookBaseURL, "runbook-base-url", "", "The base URL of the runbooks linked from Ready messages of actionable reasons; empty adds no link.")
	fs.StringVar(&o.integrityKeySecret, "integrity-key-secret", integrity.DefaultSecretName, "The Secret holding the key that authenticates snapshots and migration ledgers, created when missing: <name> in $RUNTIME_NAMESPACE, or <namespace>/<name>.")
	fs.IntVar(&o.maxObjectsPerStage, "max-objects-per-stage", build.DefaultMaxObjects, "The most objects the files of one stage (or of one job action) may hold; a larger stage fails with BuildFailed before kustomize assembles it, so that one tenant's build cannot hold the build lock for minutes. 0 sets no limit.")
	fs.IntVar(&o.httpRetry, "http-retry", source.DefaultRetries, "The maximum number of retries when failing to fetch artifacts over HTTP; 0 disables retries.")
	fs.StringSliceVar(&o.allowedActionHosts, "allowed-action-hosts", nil, "Globs of the hosts HTTP actions may call; when empty, only public addresses are. Link-local and cloud metadata addresses are always refused; loopback and private ones only when an entry names the host without wildcards or is an address pattern such as 10.0.*.")

	fs.BoolVar(&o.enableWebhook, "enable-webhook", true, "Serve the validating admission webhook for StageSets.")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "The port the admission webhook listens on.")
	fs.StringVar(&o.webhookCertMode, "webhook-cert-mode", certModeSelfSigned, "Where the webhook serving certificate comes from: self-signed or cert-manager.")
	fs.StringVar(&o.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "The directory holding the webhook serving certificate.")
	fs.DurationVar(&o.webhookCertValidity, "webhook-cert-validity", 90*24*time.Hour, "The validity of a self-signed webhook certificate.")
	fs.DurationVar(&o.webhookCertRenewBefore, "webhook-cert-renew-before", 30*24*time.Hour, "How long before expiry a self-signed webhook certificate is renewed.")
	fs.StringVar(&o.webhookServiceName, "webhook-service-name", "stageset-webhook", "The Service in front of the admission webhook.")
	fs.StringVar(&o.webhookServiceNS, "webhook-service-namespace", "", "The namespace of the webhook Service; defaults to the controller's namespace.")
	fs.StringVar(&o.webhookConfigName, "webhook-config-name", "stageset-controller", "The ValidatingWebhookConfiguration whose caBundle the controller keeps current.")

	fs.BoolVar(&o.printVersion, "version", false, "Print the version and exit.")

	o.clientOptions.BindFlags(fs)
	o.kubeConfigOptions.BindFlags(fs)
	o.logOptions.BindFlags(fs)
	o.leaderElectionOptions.BindFlags(fs)
	o.rateLimiterOptions.BindFlags(fs)
	o.watchOptions.BindFlags(fs)
	o.intervalJitterOptions.BindFlags(fs)
	o.aclOptions.BindFlags(fs)
	o.featureGates.BindFlags(fs)
}

// validate refuses flag values the controller cannot run with, before any
// connection is made.
func (o *options) validate() error {
	var errs []error
	if o.concurrent < 1 {
		errs = append(errs, fmt.Errorf("--concurrent must be at least 1, got %d", o.concurrent))
	}
	if o.requeueDependency <= 0 {
		errs = append(errs, fmt.Errorf("--requeue-dependency must be greater than zero, got %s", o.requeueDependency))
	}
	if o.runbookBaseURL != "" {
		// No whitespace: a link ends at the first space of a message.
		if u, err := url.Parse(o.runbookBaseURL); err != nil || u.Scheme == "" || u.Host == "" || strings.ContainsAny(o.runbookBaseURL, " \t\n") {
			errs = append(errs, fmt.Errorf("--runbook-base-url %q must be an absolute URL", o.runbookBaseURL))
		}
	}
	if o.maxObjectsPerStage < 0 {
		errs = append(errs, fmt.Errorf("--max-objects-per-stage must not be negative, got %d", o.maxObjectsPerStage))
	}
	if o.httpRetry < 0 {
		errs = append(errs, fmt.Errorf("--http-retry must not be negative, got %d", o.httpRetry))
	}
	for _, glob := range o.allowedActionHosts {
		if _, err := path.Match(glob, ""); err != nil {
			errs = append(errs, fmt.Errorf("--allowed-action-hosts: bad glob %q: %w", glob, err))
		}
	}
	if o.webhookCertMode != certModeSelfSigned && o.webhookCertMode != certModeCertManager {
		errs = append(errs, fmt.Errorf("--webhook-cert-mode must be %s or %s, got %q", certModeSelfSigned, certModeCertManager, o.webhookCertMode))
	}
	if o.webhookPort < 1 || o.webhookPort > 65535 {
		errs = append(errs, fmt.Errorf("--webhook-port must be a TCP port, got %d", o.webhookPort))
	}
	if o.webhookCertRenewBefore >= o.webhookCertValidity {
		errs = append(errs, fmt.Errorf("--webhook-cert-renew-before (%s) must be shorter than --webhook-cert-validity (%s)", o.webhookCertRenewBefore, o.webhookCertValidity))
	}
	return errors.Join(errs...)
}

// fetchRetries is --http-retry as source.Fetcher.Retries, where zero means
// the default and a negative value no retries.
func (o *options) fetchRetries() int {
	if o.httpRetry == 0 {
		return -1
	}
	return o.httpRetry
}
