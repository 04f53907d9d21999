package install

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestKubeStateMetricsConfigPathsExist checks that every path the
// kube-state-metrics config reads is a field of the StageSet CRD: a path
// that names no field yields no label, silently.
func TestKubeStateMetricsConfigPathsExist(t *testing.T) {
	var cfg struct {
		Kind string `json:"kind"`
		Spec struct {
			Resources []struct {
				GroupVersionKind struct{ Group, Version, Kind string } `json:"groupVersionKind"`
				MetricNamePrefix string                                `json:"metricNamePrefix"`
				Metrics          []struct {
					Name string `json:"name"`
					Help string `json:"help"`
					Each struct {
						Type string `json:"type"`
						Info struct {
							LabelsFromPath map[string][]string `json:"labelsFromPath"`
						} `json:"info"`
					} `json:"each"`
					LabelsFromPath map[string][]string `json:"labelsFromPath"`
				} `json:"metrics"`
			} `json:"resources"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict(readRepoFile(t, "config/monitoring/kube-state-metrics/stageset.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(readRepoFile(t, "config/crd/bases/stageset.io_stagesets.yaml"), &crd); err != nil {
		t.Fatal(err)
	}
	if cfg.Kind != "CustomResourceStateMetrics" || len(cfg.Spec.Resources) != 1 {
		t.Fatalf("config: kind %q with %d resources", cfg.Kind, len(cfg.Spec.Resources))
	}
	res := cfg.Spec.Resources[0]
	if res.GroupVersionKind.Group != crd.Spec.Group || res.GroupVersionKind.Kind != crd.Spec.Names.Kind ||
		res.MetricNamePrefix != "gotk" || len(res.Metrics) != 1 || res.Metrics[0].Name != "resource_info" {
		t.Fatalf("config does not expose gotk_resource_info of %s/%s: %+v", crd.Spec.Group, crd.Spec.Names.Kind, res)
	}
	var schema *apiextensionsv1.JSONSchemaProps
	for _, v := range crd.Spec.Versions {
		if v.Name == res.GroupVersionKind.Version {
			schema = v.Schema.OpenAPIV3Schema
		}
	}
	if schema == nil {
		t.Fatalf("the CRD serves no version %s", res.GroupVersionKind.Version)
	}
	paths := map[string][]string{}
	for label, path := range res.Metrics[0].LabelsFromPath {
		paths[label] = path
	}
	for label, path := range res.Metrics[0].Each.Info.LabelsFromPath {
		paths[label] = path
	}
	for _, label := range []string{"name", "exported_namespace", "ready", "reason", "suspended", "revision"} {
		if paths[label] == nil {
			t.Errorf("no %s label", label)
		}
	}
	for label, path := range paths {
		if path[0] == "metadata" {
			continue
		}
		s := schema
		for _, step := range path {
			if strings.HasPrefix(step, "[") {
				// A [field=value] selector picks an item of an array.
				if s.Items == nil || s.Items.Schema == nil {
					s = nil
					break
				}
				s = s.Items.Schema
				continue
			}
			p, ok := s.Properties[step]
			if !ok {
				s = nil
				break
			}
			s = &p
		}
		if s == nil {
			t.Errorf("label %s reads %v, which is not a field of the StageSet CRD", label, path)
		}
	}
}
