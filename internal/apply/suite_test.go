package apply

import (
	"context"
	"os"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

const fieldManager = "stageset-controller"

// newManager returns a Manager over the bed's admin client.
func newManager() *Manager { return NewManager(env.Client, fieldManager) }

// fromYAML parses one manifest.
func fromYAML(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &obj.Object); err != nil {
		t.Fatalf("parsing manifest: %v", err)
	}
	return obj
}

// configMap returns a ConfigMap manifest with the given data.
func configMap(ns, name string, data map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"data":       data,
	}}
	return obj
}

// liveObject reads the live object of a manifest; nil when it does not exist.
func liveObject(t *testing.T, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	out := &unstructured.Unstructured{}
	out.SetGroupVersionKind(obj.GroupVersionKind())
	err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(obj), out)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading %s: %v", obj.GetName(), err)
	}
	return out
}

// widgetGVK is a test kind with a status subresource and no schema, that
// kstatus cannot judge by itself.
var widgetGVK = schema.GroupVersionKind{Group: "tests.stageset.io", Version: "v1", Kind: "Widget"}

var widgetOnce sync.Once

// installWidgetCRD installs the Widget CRD once per test binary.
func installWidgetCRD(t *testing.T) {
	t.Helper()
	g := NewWithT(t)
	widgetOnce.Do(func() {
		preserve := true
		crd := &apiextensionsv1.CustomResourceDefinition{
			ObjectMeta: metav1.ObjectMeta{Name: "widgets.tests.stageset.io"},
			Spec: apiextensionsv1.CustomResourceDefinitionSpec{
				Group: widgetGVK.Group,
				Scope: apiextensionsv1.NamespaceScoped,
				Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "widgets", Singular: "widget", Kind: "Widget", ListKind: "WidgetList"},
				Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
					Name: "v1", Served: true, Storage: true,
					Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
					Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"spec":   {Type: "object", XPreserveUnknownFields: &preserve},
							"status": {Type: "object", XPreserveUnknownFields: &preserve},
						},
					}},
				}},
			},
		}
		g.Expect(env.Client.Create(context.Background(), crd)).To(Succeed())
	})
	g.Eventually(func() error {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(widgetGVK.GroupVersion().WithKind("WidgetList"))
		return env.Client.List(context.Background(), list)
	}, testenv.Timeout, testenv.Poll).Should(Succeed())
}

// widget returns a Widget manifest.
func widget(ns, name string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"size": int64(1)}}}
	obj.SetGroupVersionKind(widgetGVK)
	obj.SetNamespace(ns)
	obj.SetName(name)
	return obj
}

// patchStatus merges status into the live object's status subresource.
func patchStatus(t *testing.T, obj *unstructured.Unstructured, status map[string]any) {
	t.Helper()
	patched := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	patched.SetGroupVersionKind(obj.GroupVersionKind())
	patched.SetNamespace(obj.GetNamespace())
	patched.SetName(obj.GetName())
	if err := env.Client.Status().Patch(context.Background(), patched, client.Merge); err != nil {
		t.Fatalf("patching status of %s: %v", obj.GetName(), err)
	}
}
