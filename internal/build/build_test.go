package build

import (
	"testing"

	"github.com/fluxcd/pkg/apis/kustomize"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const serviceSvc = `apiVersion: v1
kind: Service
metadata:
  name: svc
spec:
  ports: [{port: 80}]
`

func TestBuild_GeneratesKustomization(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		// Several documents in one file, nested folders, .yml and .yaml.
		"app/cm.yaml":                  configMapA + "---\n" + serviceSvc,
		"app/nested/deeper/worker.yml": deploymentWorker,
		"app/README.md":                "# not a manifest",
		"app/notes.txt":                "kind: ConfigMap\nmetadata: {name: txt}\n",
		// A sub-folder with its own kustomization is included as a whole,
		// with only what it lists.
		"app/sub/kustomization.yaml":   "namePrefix: sub-\nresources: [only.yaml]\n",
		"app/sub/only.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: only}\n",
		"app/sub/unlisted.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: unlisted}\n",
		"other/outside-the-stage.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n",
	})

	want := []string{"ConfigMap//a", "ConfigMap//sub-only", "Service//svc", "Deployment//worker"}
	for _, path := range []string{"app", "./app", "app/", "./app/./nested/.."} {
		t.Run(path, func(t *testing.T) {
			g := NewWithT(t)
			objs, err := Build(Input{Root: root, Path: path})
			g.Expect(err).NotTo(HaveOccurred())
			// ssa apply order: ConfigMap, Service, Deployment; then by name.
			g.Expect(ids(objs)).To(Equal(want))
			for _, o := range objs {
				g.Expect(o.GetAnnotations()).To(BeEmpty(), "no build annotations on %s", o.GetName())
			}
			g.Expect(find(objs, "ConfigMap", "a").GetLabels()).To(BeEmpty(), "no ownership labels")
			g.Expect(find(objs, "Deployment", "worker").GetLabels()).To(Equal(map[string]string{"tier": "back"}))
		})
	}

	t.Run("root path", func(t *testing.T) {
		g := NewWithT(t)
		objs, err := Build(Input{Root: root, Path: "./"})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(ids(objs)).To(ContainElements("ConfigMap//other", "ConfigMap//a"))
	})
}

func TestBuild_OwnKustomization(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"base/kustomization.yaml":    "resources: [worker.yaml]\n",
		"base/worker.yaml":           deploymentWorker,
		"overlay/kustomization.yaml": "namePrefix: prod-\nresources: [../base, cm.yaml]\n",
		"overlay/cm.yaml":            configMapA,
		"overlay/not-listed.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: not-listed}\n",
	})

	objs, err := Build(Input{Root: root, Path: "overlay"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ids(objs)).To(Equal([]string{"ConfigMap//prod-a", "Deployment//prod-worker"}))
}

func TestBuild_TargetNamespace(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/web.yaml":           deploymentWeb,
		"app/cm.yaml":            configMapA,
		"app/role.yaml":          clusterRole,
		"own/kustomization.yaml": "namespace: from-kustomization\nresources: [cm.yaml, role.yaml]\n",
		"own/cm.yaml":            configMapA,
		"own/role.yaml":          clusterRole,
	})

	tests := []struct {
		name, path, targetNamespace string
		want                        []string
	}{
		{"declared namespaces kept", "app", "",
			[]string{"ClusterRole//reader", "ConfigMap//a", "Deployment/declared/web"}},
		{"namespaced objects moved", "app", "tenant",
			[]string{"ClusterRole//reader", "ConfigMap/tenant/a", "Deployment/tenant/web"}},
		{"overrides the kustomization's namespace", "own", "tenant",
			[]string{"ClusterRole//reader", "ConfigMap/tenant/a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			objs, err := Build(Input{Root: root, Path: tt.path, TargetNamespace: tt.targetNamespace})
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(ids(objs)).To(Equal(tt.want))
		})
	}
}

func TestBuild_Patches(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/web.yaml":    deploymentWeb,
		"app/worker.yaml": deploymentWorker,
		"app/cm.yaml":     configMapA,
	})

	objs, err := Build(Input{Root: root, Path: "app", Patches: []kustomize.Patch{
		{ // strategic merge, selected by label: only web is tier=front
			Patch:  "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: any\nspec:\n  replicas: 3\n",
			Target: &kustomize.Selector{Kind: "Deployment", LabelSelector: "tier=front"},
		},
		{ // JSON6902, selected by name
			Patch:  "- op: replace\n  path: /spec/template/spec/containers/0/image\n  value: busybox:2\n",
			Target: &kustomize.Selector{Group: "apps", Version: "v1", Kind: "Deployment", Name: "worker"},
		},
		{ // strategic merge without target: matched by its own id
			Patch: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  added: yes-it-is\n",
		},
	}})
	g.Expect(err).NotTo(HaveOccurred())

	web, worker, cm := find(objs, "Deployment", "web"), find(objs, "Deployment", "worker"), find(objs, "ConfigMap", "a")
	g.Expect(nested(web, "spec", "replicas")).To(Equal(int64(3)))
	g.Expect(nested(worker, "spec", "replicas")).To(Equal(int64(1)))
	for _, o := range objs {
		g.Expect(func() { o.DeepCopy() }).NotTo(Panic(), "numbers are int64, as DeepCopy requires")
	}
	g.Expect(image(worker)).To(Equal("busybox:2"))
	g.Expect(image(web)).To(Equal("nginx:1"))
	g.Expect(cm.Object["data"]).To(Equal(map[string]any{"key": "a", "added": "yes-it-is"}))
}

func TestBuild_PatchesAddToOwnKustomization(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/kustomization.yaml": `resources: [worker.yaml]
patches:
  - target: {kind: Deployment}
    patch: |
      - op: replace
        path: /spec/replicas
        value: 2
`,
		"app/worker.yaml": deploymentWorker,
	})

	objs, err := Build(Input{Root: root, Path: "app", Patches: []kustomize.Patch{{
		Patch:  "- op: add\n  path: /metadata/labels/stage\n  value: app\n",
		Target: &kustomize.Selector{Kind: "Deployment"},
	}}})
	g.Expect(err).NotTo(HaveOccurred())
	worker := find(objs, "Deployment", "worker")
	g.Expect(nested(worker, "spec", "replicas")).To(Equal(int64(2)), "the folder's own patch still applies")
	g.Expect(worker.GetLabels()).To(HaveKeyWithValue("stage", "app"))
}

func TestBuild_Substitution(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/vars.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: vars
  namespace: ${ns:=default-ns}
data:
  cluster: "${cluster}"
  region: "${region:=eu-1}"
`,
		"app/worker.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: worker
spec:
  replicas: ${replicas:=2}
`,
		"app/disabled.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: disabled
  annotations:
    kustomize.toolkit.fluxcd.io/substitute: disabled
data:
  cluster: "${cluster}"
`,
	})

	tests := []struct {
		name         string
		vars         map[string]string
		wantVars     map[string]any
		wantNS       string
		wantReplicas any
	}{
		{
			name:         "nil: no substitution, literals stay",
			vars:         nil,
			wantVars:     map[string]any{"cluster": "${cluster}", "region": "${region:=eu-1}"},
			wantNS:       "${ns:=default-ns}",
			wantReplicas: "${replicas:=2}",
		},
		{
			// As in Flux, an undefined variable becomes empty; kustomize
			// has dropped the quotes by then, so the field is null.
			name:         "empty: defaults apply, undefined is empty",
			vars:         map[string]string{},
			wantVars:     map[string]any{"cluster": nil, "region": "eu-1"},
			wantNS:       "default-ns",
			wantReplicas: int64(2),
		},
		{
			name:         "values override defaults",
			vars:         map[string]string{"cluster": "prod", "region": "us-2", "ns": "shop", "replicas": "5"},
			wantVars:     map[string]any{"cluster": "prod", "region": "us-2"},
			wantNS:       "shop",
			wantReplicas: int64(5),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			objs, err := Build(Input{Root: root, Path: "app", Substitute: tt.vars})
			g.Expect(err).NotTo(HaveOccurred())
			vars := find(objs, "ConfigMap", "vars")
			g.Expect(vars.Object["data"]).To(Equal(tt.wantVars))
			g.Expect(vars.GetNamespace()).To(Equal(tt.wantNS))
			// Equal, not BeEquivalentTo: numbers must be int64 as in objects
			// read from the API.
			g.Expect(nested(find(objs, "Deployment", "worker"), "spec", "replicas")).To(Equal(tt.wantReplicas))
			disabled := find(objs, "ConfigMap", "disabled")
			g.Expect(disabled.Object["data"]).To(Equal(map[string]any{"cluster": "${cluster}"}))
		})
	}
}

// nested returns the field at path of obj, nil when absent.
func nested(obj *unstructured.Unstructured, path ...string) any {
	v, _, _ := unstructured.NestedFieldNoCopy(obj.Object, path...)
	return v
}

// image returns the image of the first container of a Deployment.
func image(obj *unstructured.Unstructured) string {
	containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		return ""
	}
	img, _, _ := unstructured.NestedString(containers[0].(map[string]any), "image")
	return img
}

func TestBuild_ApplyOrder(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/all.yaml": `apiVersion: v1
kind: ServiceAccount
metadata: {name: sa, namespace: b}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: sa, namespace: a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
---
apiVersion: v1
kind: Namespace
metadata: {name: a}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
`,
	})

	objs, err := Build(Input{Root: root, Path: "app"})
	g.Expect(err).NotTo(HaveOccurred())
	// ssa's order puts CRDs before Namespaces and ClusterRoles before
	// ServiceAccounts, unlike kustomize's own legacy order.
	g.Expect(ids(objs)).To(Equal([]string{
		"CustomResourceDefinition//widgets.example.com",
		"Namespace//a",
		"ClusterRole//reader",
		"ServiceAccount/a/sa",
		"ServiceAccount/b/sa",
	}))
}

// Substitution types values the way kustomize-controller does (docs/api.md
// says so): a number stays a number inside quotes, and substituted quotes
// keep it a string.
func TestBuild_SubstitutedNumbers(t *testing.T) {
	g := NewWithT(t)
	root := t.TempDir()
	writeTree(t, root, map[string]string{"cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: ports
data:
  quoted: "${port}"
  string: ${quote}${port}${quote}
`})
	objs, err := Build(Input{Root: root, Path: "./", Substitute: map[string]string{"port": "8080", "quote": `"`}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(nested(objs[0], "data", "quoted")).To(Equal(int64(8080)))
	g.Expect(nested(objs[0], "data", "string")).To(Equal("8080"))
}
