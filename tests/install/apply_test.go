package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The rendered chart applies to a real kube-apiserver (server-side apply,
// dry-run: admission and schema validation run, nothing is stored), with the
// Prometheus Operator's ServiceMonitor and PrometheusRule CRDs installed
// from testdata/crds. Those are generated from the pinned operator module:
//
//go:generate go tool controller-gen crd paths=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1 output:crd:artifacts:config=testdata/crds
//go:generate sh -c "cd testdata/crds && ls | grep -v -e _servicemonitors -e _prometheusrules | xargs rm -f"

// withoutCRDs are the kinds of the chart whose CRDs the test server lacks:
// cert-manager's (its module is too heavy to pin for two CRDs). The render
// tests check their fields.
var withoutCRDs = map[string]bool{"cert-manager.io/v1": true}

func TestRenderedChartAppliesToTheAPIServer(t *testing.T) {
	c := startAPIServer(t)
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: releaseNamespace}}); err != nil {
		t.Fatal(err)
	}
	for name, vals := range map[string]string{"defaults": "", "every toggle": allToggles} {
		t.Run(name, func(t *testing.T) {
			applied := 0
			for _, obj := range mustRender(t, vals).objects {
				if withoutCRDs[obj.GetAPIVersion()] {
					continue
				}
				if err := dryRunApply(ctx, c, obj); err != nil {
					t.Errorf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
				}
				applied++
			}
			if applied < 11 {
				t.Errorf("applied %d objects only", applied)
			}
		})
	}

	// The dry-run validates: a rule the values schema lets through but the
	// PrometheusRule CRD refuses (a `for` that is no duration) is refused.
	t.Run("an invalid extra rule is refused", func(t *testing.T) {
		m := mustRender(t, `metrics: {prometheusRule: {enabled: true, extraRules: [{alert: X, expr: up == 0, for: 5 minutes}]}}`)
		err := dryRunApply(ctx, c, m.one(t, "PrometheusRule", "stageset-controller"))
		if err == nil || !strings.Contains(err.Error(), "for") {
			t.Errorf("an extra rule with for: \"5 minutes\" was accepted (err %v)", err)
		}
	})
}

// dryRunApply applies obj with server-side apply in dry-run, as the field
// manager helm does.
func dryRunApply(ctx context.Context, c client.Client, obj *unstructured.Unstructured) error {
	return c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("helm"), client.ForceOwnership, client.DryRunAll)
}

// startAPIServer starts kube-apiserver and etcd (binaries of `make
// testbin`) with the CRDs of testdata/crds and stops them with the test.
func startAPIServer(t *testing.T) client.Client {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(repoRoot, "bin", "testbin", "v1.37.2")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		t.Fatalf("test API server binaries missing in %s (%v): run `make testbin`", assets, err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join("testdata", "crds")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting the test API server: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
