package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

func parseFlags(t *testing.T, args ...string) *options {
	t.Helper()
	opts := newOptions()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	opts.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parsing %v: %v", args, err)
	}
	return opts
}

func TestEveryDocumentedFlagExists(t *testing.T) {
	g := NewWithT(t)
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	newOptions().bindFlags(fs)
	for name, def := range map[string]string{
		// SPEC §10, own flags, with their defaults.
		"metrics-bind-address": ":8080", "health-probe-bind-address": ":8081",
		"runbook-base-url": "", "allowed-action-hosts": "[]",
		"enable-webhook": "true", "webhook-port": "9443", "webhook-cert-mode": "self-signed",
		"webhook-cert-dir": "", "webhook-cert-validity": "", "webhook-cert-renew-before": "",
		"webhook-service-name": "", "webhook-service-namespace": "", "webhook-config-name": "",
		// fluxcd/pkg/runtime bundles and Flux's usual flags.
		"events-addr": "", "concurrent": "4", "requeue-dependency": "30s",
		"no-cross-namespace-refs": "false", "default-service-account": "",
		"watch-all-namespaces": "true", "watch-label-selector": "", "feature-gates": "",
		"kube-api-qps": "", "kube-api-burst": "", "log-level": "", "log-encoding": "",
		"enable-leader-election": "false", "interval-jitter-percentage": "",
	} {
		f := fs.Lookup(name)
		g.Expect(f).NotTo(BeNil(), "flag --%s is missing", name)
		if def != "" {
			g.Expect(f.DefValue).To(Equal(def), "default of --%s", name)
		}
	}
}

func TestBadFlagValuesAreRefused(t *testing.T) {
	cases := map[string][]string{
		"concurrent":         {"--concurrent=0"},
		"requeue-dependency": {"--requeue-dependency=0s"},
		"runbook-base-url":   {"--runbook-base-url=not a url"},
		"runbook-base-space": {"--runbook-base-url=https://wiki.example/run books"},
		"webhook-cert-mode":  {"--webhook-cert-mode=vault"},
		"webhook-port":       {"--webhook-port=70000"},
		"renew-before":       {"--webhook-cert-validity=24h", "--webhook-cert-renew-before=48h"},
		"allowed-hosts":      {"--allowed-action-hosts=[bad"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			err := parseFlags(t, args...).validate()
			NewWithT(t).Expect(err).To(MatchError(ContainSubstring(strings.SplitN(strings.TrimPrefix(args[len(args)-1], "--"), "=", 2)[0])))
		})
	}
	NewWithT(t).Expect(parseFlags(t).validate()).To(Succeed())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestControllerRuns starts the controller the way main does, against the
// real API server, and checks its endpoints and its reconciler.
func TestControllerRuns(t *testing.T) {
	g := NewWithT(t)
	metricsAddr, healthAddr := freeAddr(t), freeAddr(t)
	startController(t, "--metrics-bind-address="+metricsAddr, "--health-probe-bind-address="+healthAddr)
	ctx := context.Background()

	for _, path := range []string{"/healthz", "/readyz"} {
		g.Eventually(func() int { code, _ := get("http://" + healthAddr + path); return code },
			testenv.Timeout, testenv.Poll).Should(Equal(http.StatusOK), path)
	}

	ns := env.NewNamespace(t)
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: time.Minute},
			SourceRef: &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			Stages:    []stagesetv1.Stage{{Name: "app"}},
		},
	}
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	g.Eventually(func() int64 {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		return obj.Status.ObservedGeneration
	}, testenv.Timeout, testenv.Poll).Should(Equal(int64(1)))

	// The profiler is off unless --enable-pprof.
	code, _ := get("http://" + metricsAddr + "/debug/pprof/")
	g.Expect(code).To(Equal(http.StatusNotFound))

	metrics := func() string { _, body := get("http://" + metricsAddr + "/metrics"); return body }
	g.Eventually(metrics, testenv.Timeout, testenv.Poll).Should(ContainSubstring(`controller_runtime_reconcile_total{controller="stageset",result="success"}`))
	// The StageSet's source does not exist: the run ends SourceNotReady.
	g.Eventually(metrics, testenv.Timeout, testenv.Poll).Should(ContainSubstring(
		`stageset_reconcile_total{name="demo",namespace="` + ns + `",reason="SourceNotReady"}`))
}

func TestUnknownFeatureGateStopsTheController(t *testing.T) {
	opts := parseFlags(t, "--feature-gates=NoSuchGate=true", "--metrics-bind-address=0", "--health-probe-bind-address=0")
	err := run(context.Background(), env.Config, opts)
	NewWithT(t).Expect(err).To(MatchError(ContainSubstring("feature-gates")))
}

// --enable-pprof serves the Go profiler on the metrics listener.
func TestPprofOnTheMetricsListener(t *testing.T) {
	g := NewWithT(t)
	metricsAddr := freeAddr(t)
	startController(t, "--metrics-bind-address="+metricsAddr, "--enable-pprof")
	g.Eventually(func() int { code, _ := get("http://" + metricsAddr + "/debug/pprof/"); return code },
		testenv.Timeout, testenv.Poll).Should(Equal(http.StatusOK))
	code, body := get("http://" + metricsAddr + "/debug/pprof/heap?debug=1")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(ContainSubstring("heap profile"))
}
