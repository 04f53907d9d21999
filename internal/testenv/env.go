// Package testenv is the shared test bed: a real kube-apiserver and etcd
// (envtest, with binaries built offline by `make testbin`) with the StageSet
// CRD and the Flux source CRDs installed, a controller-runtime manager, a
// local HTTP artifact server and helpers that publish artifacts on Flux
// sources the way source-controller does.
//
// Nothing is downloaded at test time: when the binaries are missing, Start
// fails and says to run `make testbin`.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/stageset/stageset-controller/internal/scheme"
)

// KubernetesVersion is the version of the kube-apiserver and the k8s.io
// libraries the bed runs; `make testbin` builds binaries of this version.
const KubernetesVersion = "v1.37.2"

// Environment is a running test bed.
type Environment struct {
	// Config reaches the API server as cluster admin.
	Config *rest.Config
	// Client is an uncached client with the project's scheme.
	Client client.Client
	// Scheme has the built-in, Flux source and StageSet types.
	Scheme *kruntime.Scheme
	// Artifacts serves artifact tarballs on loopback.
	Artifacts *ArtifactServer

	env     *envtest.Environment
	stopMgr context.CancelFunc
	mgrDone chan error
}

// RepoRoot returns the root folder of the project's checkout.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// AssetsDir returns the folder holding the kube-apiserver and etcd binaries:
// $KUBEBUILDER_ASSETS when set, else bin/testbin/<version> of the checkout.
func AssetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = AssetsDirFor(RepoRoot())
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("test API server binaries missing in %s (%w): run `make testbin`", dir, err)
		}
	}
	return dir, nil
}

// AssetsDirFor returns the folder `make testbin` and `make localbin` build
// the control-plane binaries into, in the checkout at root.
func AssetsDirFor(root string) string {
	return filepath.Join(root, "bin", "testbin", KubernetesVersion)
}

// CRDPaths returns the folders of the CRDs installed into the bed: the
// project's own and the Flux source CRDs pinned by go.mod.
func CRDPaths() []string { return CRDPathsFor(RepoRoot()) }

// CRDPathsFor returns the CRD folders of CRDPaths in the checkout at root.
func CRDPathsFor(root string) []string {
	return []string{
		filepath.Join(root, "config", "crd", "bases"),
		filepath.Join(root, "config", "testdata", "crds"),
	}
}

// Start starts etcd and kube-apiserver, installs the CRDs and the artifact
// server. Call Stop when done, typically from TestMain.
func Start() (*Environment, error) { return StartWithWebhooks() }

// StartWithWebhooks is Start with validating webhook configurations
// registered in the API server. envtest points each webhook whose
// clientConfig names a service path at the manager's webhook server, on
// loopback with a certificate of its own, which StartManager configures.
func StartWithWebhooks(hooks ...*admissionregistrationv1.ValidatingWebhookConfiguration) (*Environment, error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(false), zap.Level(zapcore.Level(logLevel())), zap.StacktraceLevel(zapcore.PanicLevel),
		zap.RawZapOpts(uberzap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, Logs.core()) }))))

	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	e := &Environment{
		Scheme: scheme.New(),
		env: &envtest.Environment{
			BinaryAssetsDirectory: assets,
			CRDDirectoryPaths:     CRDPaths(),
			ErrorIfCRDPathMissing: true,
			WebhookInstallOptions: envtest.WebhookInstallOptions{ValidatingWebhooks: hooks},
		},
	}
	// The bed's own client also reads CRDs, which the controller never does.
	if err := apiextensionsv1.AddToScheme(e.Scheme); err != nil {
		return nil, err
	}
	e.env.CRDInstallOptions.Scheme = e.Scheme
	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("starting the test API server: %w", err)
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		_ = e.env.Stop()
		return nil, err
	}
	if e.Artifacts, err = NewArtifactServer(); err != nil {
		_ = e.env.Stop()
		return nil, err
	}
	return e, nil
}

// StartManager starts a manager on the bed and lets setup register
// reconcilers on it first. Metrics and probes are off; the manager stops
// with Stop.
func (e *Environment) StartManager(setup func(mgr ctrl.Manager) error) error {
	if e.stopMgr != nil {
		return errors.New("a manager is already running")
	}
	opts := ctrl.Options{
		Scheme:                 e.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}
	if w := e.env.WebhookInstallOptions; len(w.ValidatingWebhooks) > 0 {
		opts.WebhookServer = webhook.NewServer(webhook.Options{
			Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir,
		})
	}
	mgr, err := ctrl.NewManager(e.Config, opts)
	if err != nil {
		return err
	}
	if err := setup(mgr); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stopMgr, e.mgrDone = cancel, make(chan error, 1)
	go func() { e.mgrDone <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		cancel()
		return fmt.Errorf("manager cache did not sync: %w", <-e.mgrDone)
	}
	return nil
}

// Stop stops the manager, the artifact server, kube-apiserver and etcd.
func (e *Environment) Stop() error {
	var errs []error
	if e.stopMgr != nil {
		e.stopMgr()
		errs = append(errs, <-e.mgrDone)
	}
	if e.Artifacts != nil {
		e.Artifacts.Close()
	}
	errs = append(errs, e.env.Stop())
	return errors.Join(errs...)
}

// AddUser adds a user to the API server, for tests that act under another
// identity than cluster admin.
func (e *Environment) AddUser(name string, groups ...string) (*rest.Config, error) {
	user, err := e.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// NewNamespace creates a namespace with a random name for one test and
// deletes it when the test ends. (Namespaces are never removed in envtest,
// which runs no namespace controller; their names just stay unique.)
func (e *Environment) NewNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: RandomName("test")}}
	if err := e.Client.Create(context.Background(), ns); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() { _ = e.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// RandomName returns prefix followed by a dash and eight random hex digits.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// logLevel is -1 (debug) with TESTENV_DEBUG set, else errors only, so test
// output stays readable.
func logLevel() int8 {
	if os.Getenv("TESTENV_DEBUG") != "" {
		return -1
	}
	return 2
}

// Run starts the bed into *env, starts a manager with the given setups when
// there are any, runs the package's tests and stops everything; use it as the
// body of TestMain:
//
//	var env *testenv.Environment
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, setupReconciler)) }
func Run(m *testing.M, env **Environment, setups ...func(ctrl.Manager) error) int {
	// A `go test -fuzz` worker process runs nothing but the fuzz function,
	// and no fuzz target uses the bed (env stays nil there): an API server
	// per worker would only eat the fuzzing time and the machine's cores.
	if slices.ContainsFunc(os.Args[1:], func(arg string) bool { return strings.HasPrefix(arg, "-test.fuzzworker") }) {
		return m.Run()
	}
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer func() {
		if err := e.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "testenv: stopping:", err)
		}
	}()
	if len(setups) > 0 {
		err := e.StartManager(func(mgr ctrl.Manager) error {
			for _, setup := range setups {
				if err := setup(mgr); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testenv: starting the manager:", err)
			return 1
		}
	}
	*env = e
	return m.Run()
}

// Poll is the default polling period of Eventually in tests on the bed.
const Poll = 100 * time.Millisecond

// Timeout is the default timeout of Eventually in tests on the bed.
const Timeout = 30 * time.Second

// Kubeconfig returns a kubeconfig of a new cluster-admin user, for tools that
// read kubeconfig files (the CLI, child processes).
func (e *Environment) Kubeconfig(user string) ([]byte, error) {
	u, err := e.env.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}
