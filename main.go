// Command stageset-controller runs the StageSet controller: it rolls out
// ordered stages built from Flux sources with server-side apply, gating each
// stage on the health of the previous one.
package main

import (
	"context"
	goflag "flag"
	"fmt"
	"math/rand"
	"os"
	"sync"
	// Update windows name IANA time zones; the image has no zoneinfo.
	_ "time/tzdata"

	"github.com/go-logr/logr"
	flag "github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcfg "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	runtimectrl "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/logger"
	"github.com/fluxcd/pkg/runtime/pprof"
	"github.com/fluxcd/pkg/runtime/probes"

	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/controller"
	"github.com/stageset/stageset-controller/internal/impersonation"
	"github.com/stageset/stageset-controller/internal/metrics"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/runbook"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/snapshot"
	"github.com/stageset/stageset-controller/internal/source"
	"github.com/stageset/stageset-controller/internal/validation"
	"github.com/stageset/stageset-controller/internal/version"
)

func main() {
	opts := newOptions()
	fs := flag.NewFlagSet(controller.ControllerName, flag.ExitOnError)
	opts.bindFlags(fs)
	// controller-runtime registers --kubeconfig on the standard flag set.
	fs.AddGoFlagSet(goflag.CommandLine)
	_ = fs.Parse(os.Args[1:])

	if opts.printVersion {
		fmt.Println(version.String())
		return
	}

	logger.SetLogger(logger.NewLogger(opts.logOptions))
	ctx := ctrl.SetupSignalHandler()
	if err := run(ctx, runtimeclient.GetConfigOrDie(opts.clientOptions), opts); err != nil {
		ctrl.Log.WithName("setup").Error(err, "controller stopped")
		os.Exit(1)
	}
}

// run builds the manager and the StageSet reconciler from the options and
// blocks until ctx is done. Tests call it with the envtest config.
func run(ctx context.Context, restConfig *rest.Config, opts *options) error {
	log := ctrl.Log.WithName("setup")
	if err := opts.validate(); err != nil {
		return err
	}
	if err := setProcessSettings(opts, log); err != nil {
		return err
	}

	watchSelector, err := runtimectrl.GetWatchSelector(opts.watchOptions)
	if err != nil {
		return fmt.Errorf("invalid --watch-label-selector: %w", err)
	}
	// As in kustomize-controller, only ConfigMaps and Secrets that match
	// --watch-configs-label-selector (reconcile.fluxcd.io/watch=Enabled by
	// default) trigger a run when they change; others are read at the next
	// run. The selector is a cache filter, so the controller holds no
	// metadata of the other ConfigMaps and Secrets of the cluster.
	configsSelector := labels.Everything()
	if sel := opts.watchOptions.ConfigsLabelSelector; sel != "" {
		if configsSelector, err = labels.Parse(sel); err != nil {
			return fmt.Errorf("invalid --watch-configs-label-selector: %w", err)
		}
	}

	leaderElectionID := controller.ControllerName + "-leader-election"
	if opts.watchOptions.LabelSelector != "" {
		// Shards select disjoint StageSets, so each elects its own leader.
		leaderElectionID = leaderelection.GenerateID(leaderElectionID, opts.watchOptions.LabelSelector)
	}

	mgrOptions := ctrl.Options{
		Scheme:                        scheme.New(),
		HealthProbeBindAddress:        opts.healthAddr,
		LeaderElection:                opts.leaderElectionOptions.Enable,
		LeaderElectionReleaseOnCancel: opts.leaderElectionOptions.ReleaseOnCancel,
		LeaseDuration:                 &opts.leaderElectionOptions.LeaseDuration,
		RenewDeadline:                 &opts.leaderElectionOptions.RenewDeadline,
		RetryPeriod:                   &opts.leaderElectionOptions.RetryPeriod,
		LeaderElectionID:              leaderElectionID,
		Logger:                        ctrl.Log,
		// The Lease lives in the controller's namespace, where its Role
		// grants access (config/rbac); empty falls back to the namespace of
		// the pod's service account.
		LeaderElectionNamespace: os.Getenv(runtimectrl.EnvRuntimeNamespace),
		// Secrets and ConfigMaps (substitution variables, kubeconfigs,
		// snapshots) are read directly: caching them would hold every Secret
		// of the cluster in memory. They are watched as metadata only (for
		// substituteFrom), without their managed fields.
		Client: ctrlclient.Options{Cache: &ctrlclient.CacheOptions{
			DisableFor: []ctrlclient.Object{&corev1.Secret{}, &corev1.ConfigMap{}},
		}},
		Cache: ctrlcache.Options{
			ByObject: map[ctrlclient.Object]ctrlcache.ByObject{
				controller.NewStageSet(): {Label: watchSelector},
				&corev1.ConfigMap{}:      {Label: configsSelector},
				&corev1.Secret{}:         {Label: configsSelector},
			},
			DefaultTransform: stripMetadataManagedFields,
		},
		Metrics: metricsOptions(opts),
		Controller: ctrlcfg.Controller{
			MaxConcurrentReconciles: opts.concurrent,
			RecoverPanic:            ptr.To(true),
			// The manager has one controller; the name check guards a
			// process-wide registry, which a controller restarted within
			// the process (the tests do) would trip.
			SkipNameValidation: ptr.To(true),
		},
	}
	if !opts.watchOptions.AllNamespaces {
		ns := os.Getenv(runtimectrl.EnvRuntimeNamespace)
		if ns == "" {
			return fmt.Errorf("--watch-all-namespaces=false needs the %s environment variable", runtimectrl.EnvRuntimeNamespace)
		}
		mgrOptions.Cache.DefaultNamespaces = map[string]ctrlcache.Config{ns: {}}
	}

	var admission *admissionWebhook
	if opts.enableWebhook {
		if admission, err = newAdmissionWebhook(ctx, restConfig, mgrOptions.Scheme, opts); err != nil {
			return err
		}
		mgrOptions.WebhookServer = admission.server
	}

	mgr, err := ctrl.NewManager(restConfig, mgrOptions)
	if err != nil {
		return fmt.Errorf("unable to create manager: %w", err)
	}
	probes.SetupChecks(mgr, log)

	eventRecorder, err := events.NewRecorder(ctrl.Log, opts.eventsAddr, controller.ControllerName, events.WithManager(mgr))
	if err != nil {
		return fmt.Errorf("unable to create the event recorder: %w", err)
	}

	key, err := loadIntegrityKey(ctx, mgr, opts.integrityKeySecret)
	if err != nil {
		return err
	}

	reconciler := &controller.StageSetReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Clients: &impersonation.Factory{
			Base:                  mgr.GetConfig(),
			Scheme:                mgr.GetScheme(),
			Reader:                mgr.GetAPIReader(),
			DefaultServiceAccount: opts.defaultServiceAccount,
			KubeConfigOptions:     opts.kubeConfigOptions,
			ClientOptions:         opts.clientOptions,
		},
		Sources:                   &source.Resolver{Reader: mgr.GetClient(), NoCrossNamespaceRefs: opts.aclOptions.NoCrossNamespaceRefs},
		Fetcher:                   &source.Fetcher{Logger: ctrl.Log.WithName("fetch"), Retries: opts.fetchRetries()},
		Builds:                    build.NewCache(buildCacheStages, buildCacheBytes),
		Snapshots:                 &snapshot.Store{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Key: key},
		Integrity:                 key,
		AllowedActionHosts:        opts.allowedActionHosts,
		NoCrossNamespaceRefs:      opts.aclOptions.NoCrossNamespaceRefs,
		MaxObjectsPerStage:        opts.maxObjectsPerStage,
		Migrations:                &migration.Ledger{Client: mgr.GetClient(), Reader: mgr.GetAPIReader(), Key: key},
		EventRecorder:             eventRecorder,
		Metrics:                   metrics.Default(),
		StatusManager:             controller.StatusManager,
		DependencyRequeueInterval: opts.requeueDependency,
		Runbooks:                  runbook.NewLinks(opts.runbookBaseURL),
	}
	if err := reconciler.SetupWithManager(ctx, mgr, controller.Options{
		RateLimiter: runtimectrl.GetRateLimiter(opts.rateLimiterOptions),
	}); err != nil {
		return fmt.Errorf("unable to set up the StageSet controller: %w", err)
	}

	if admission != nil {
		if err := admission.register(mgr, validation.Options{NoCrossNamespaceRefs: opts.aclOptions.NoCrossNamespaceRefs}); err != nil {
			return err
		}
	}

	log.Info("starting manager", "version", version.String())
	return mgr.Start(ctx)
}

// The build cache keeps the last build of up to this many stages and this
// many bytes of their objects (as JSON; decoded objects take a few times
// more): enough for a thousand StageSets of ordinary size, while a few huge
// stages cannot hold the controller's memory.
const (
	buildCacheStages       = 1000
	buildCacheBytes  int64 = 64 << 20
)

// stripMetadataManagedFields drops the managed fields of objects cached as
// metadata only (the watched ConfigMaps and Secrets): nothing reads them,
// and they are most of what such an object weighs.
func stripMetadataManagedFields(obj any) (any, error) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// processSettings guards the process-wide settings of fluxcd/pkg/runtime
// (feature gates, interval jitter). A real process sets them once; tests
// start several controllers in one process, whose writes must not race.
var processSettings sync.Mutex

func setProcessSettings(opts *options, log logr.Logger) error {
	processSettings.Lock()
	defer processSettings.Unlock()
	// No feature gates yet: an unknown --feature-gates entry is an error.
	if err := opts.featureGates.WithLogger(log).SupportedFeatures(map[string]bool{}, nil); err != nil {
		return fmt.Errorf("invalid --feature-gates: %w", err)
	}
	if err := opts.intervalJitterOptions.SetGlobalJitter(rand.New(newLockedSource())); err != nil {
		return fmt.Errorf("invalid interval jitter: %w", err)
	}
	return nil
}

// metricsOptions serve the metrics, and with --enable-pprof the Go
// profiler beside them, as Flux controllers do (fluxcd/pkg/runtime/pprof):
// off by default, a profile can be slow to take and tells a lot about the
// process.
func metricsOptions(opts *options) metricsserver.Options {
	m := metricsserver.Options{BindAddress: opts.metricsAddr}
	if opts.enablePprof {
		m.ExtraHandlers = pprof.GetHandlers()
	}
	return m
}
