// Package install tests the install artifacts that need heavy libraries the
// controller's own module must not take: the Helm chart (rendered with the
// Helm Go library, no helm binary), its PrometheusRule (parsed and evaluated
// with the Prometheus rules engine, as `promtool test rules` does) and the
// Grafana dashboard.
package install

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// releaseNamespace is the namespace the chart is rendered into, the one
// config/default installs into.
const releaseNamespace = "stageset-system"

// repoRoot is the checkout: `go test` runs in tests/install.
var repoRoot = filepath.Join("..", "..")

var chartDir = filepath.Join(repoRoot, "config", "chart", "stageset-controller")

// allToggles turns on every optional part of the chart, with values of the
// kind users set, and the multi-tenant RBAC.
const allToggles = `
rbac: {clusterAdmin: false}
controller:
  defaultServiceAccount: stageset-reconciler
  extraArgs: ["--concurrent=8", "--no-cross-namespace-refs=true"]
webhook:
  certMode: cert-manager
metrics:
  serviceMonitor: {enabled: true, interval: 15s, labels: {release: kube-prometheus-stack}}
  prometheusRule:
    enabled: true
    labels: {release: kube-prometheus-stack}
    extraAlertLabels: {team: platform, severity: page}
    extraRules:
    - alert: StageSetNotReadyLong
      expr: gotk_reconcile_condition{kind="StageSet", type="Ready", status="False"} == 1
      for: 1h
      labels: {severity: info}
grafana:
  dashboard: {enabled: true}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: flux, effect: NoSchedule}]
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64, arm64]}]
podLabels: {team: platform}
podAnnotations: {example.com/owner: platform}
imagePullSecrets: [{name: ghcr}]
priorityClassName: system-cluster-critical
replicas: 2
`

// manifests is a rendered chart.
type manifests struct {
	objects []*unstructured.Unstructured
	notes   string
}

// values parses a YAML document of chart values.
func values(t *testing.T, doc string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("values: %v", err)
	}
	return v
}

// loadChart loads the chart from its folder, as `helm install ./chart` does.
func loadChart(t *testing.T) *chartv2.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// renderChart renders the chart with vals over values.yaml, validating them
// against values.schema.json as `helm install` does, with strict templates
// (a reference to a value that does not exist is an error).
func renderChart(t *testing.T, vals map[string]any) (*manifests, error) {
	t.Helper()
	ch := loadChart(t)
	opts := common.ReleaseOptions{Name: "stageset", Namespace: releaseNamespace, Revision: 1, IsInstall: true}
	top, err := chartutil.ToRenderValues(ch, vals, opts, nil)
	if err != nil {
		return nil, err
	}
	files, err := engine.Engine{Strict: true}.Render(ch, top)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	m := &manifests{}
	for _, name := range names {
		switch {
		case strings.HasSuffix(name, "NOTES.txt"):
			m.notes = files[name]
			continue
		case !strings.HasSuffix(name, ".yaml"):
			continue
		}
		objs, err := decode(files[name])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		m.objects = append(m.objects, objs...)
	}
	return m, nil
}

// mustRender is renderChart for values that must render.
func mustRender(t *testing.T, doc string) *manifests {
	t.Helper()
	m, err := renderChart(t, values(t, doc))
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	return m
}

// decode splits a YAML stream into objects, skipping empty documents.
func decode(stream string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewBufferString(stream), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("an object without kind or apiVersion: %v", obj)
		}
		objs = append(objs, u)
	}
}

// find returns the rendered objects of a kind.
func (m *manifests) find(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range m.objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the only object of a kind and name.
func (m *manifests) one(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range m.find(kind) {
		if o.GetName() == name {
			if found != nil {
				t.Fatalf("two %s %s rendered", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s %s rendered; rendered: %s", kind, name, m.kinds())
	}
	return found
}

// kinds lists kind/name of every object, for messages.
func (m *manifests) kinds() string {
	var s []string
	for _, o := range m.objects {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(s, ", ")
}

// into converts an object to a typed one.
func into(t *testing.T, u *unstructured.Unstructured, out any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// readRepoFile reads a file of the checkout.
func readRepoFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
