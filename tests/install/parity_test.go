package install

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The chart must install what config/ installs: the same rights, the same
// hardened pod.

func TestChartRBACEqualsGeneratedRBAC(t *testing.T) {
	generated, err := decode(string(readRepoFile(t, "config/rbac/role.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	m := mustRender(t, "")
	for _, g := range generated {
		var want, got []rbacv1.PolicyRule
		chartObj := m.one(t, g.GetKind(), g.GetName())
		switch g.GetKind() {
		case "ClusterRole":
			var a, b rbacv1.ClusterRole
			into(t, g, &a)
			into(t, chartObj, &b)
			want, got = a.Rules, b.Rules
		case "Role":
			var a, b rbacv1.Role
			into(t, g, &a)
			into(t, chartObj, &b)
			want, got = a.Rules, b.Rules
		default:
			t.Fatalf("config/rbac/role.yaml holds a %s", g.GetKind())
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("chart %s %s differs from config/rbac/role.yaml (-generated +chart):\n%s", g.GetKind(), g.GetName(), d)
		}
	}
	// The bindings give those roles, and cluster-admin by default as
	// config/default does, to the chart's ServiceAccount.
	for _, b := range []struct{ kind, name, role string }{
		{"ClusterRoleBinding", "stageset-controller", "stageset-controller"},
		{"ClusterRoleBinding", "stageset-controller-cluster-admin", "cluster-admin"},
		{"RoleBinding", "stageset-controller-leader-election", "stageset-controller"},
	} {
		var rb rbacv1.ClusterRoleBinding // a RoleBinding has the same fields
		into(t, m.one(t, b.kind, b.name), &rb)
		sa := rbacv1.Subject{Kind: "ServiceAccount", Name: "stageset-controller", Namespace: releaseNamespace}
		if rb.RoleRef.Name != b.role || len(rb.Subjects) != 1 || rb.Subjects[0] != sa {
			t.Errorf("%s %s binds %s to %v", b.kind, b.name, rb.RoleRef.Name, rb.Subjects)
		}
	}
}

// valuesDrivenArgs are the flags the chart sets from values that
// config/default leaves at their defaults.
var valuesDrivenArgs = []string{"--runbook-base-url="}

func TestChartDeploymentMatchesConfigDefault(t *testing.T) {
	var kustomized *appsv1.Deployment
	for _, o := range kustomizeBuild(t, "config/default") {
		if o.GetKind() == "Deployment" {
			kustomized = &appsv1.Deployment{}
			into(t, o, kustomized)
		}
	}
	if kustomized == nil {
		t.Fatal("config/default holds no Deployment")
	}
	chart := &appsv1.Deployment{}
	into(t, mustRender(t, "").one(t, "Deployment", "stageset-controller"), chart)

	// The image tag is a value (v<appVersion>); so are the flags above.
	for _, d := range []*appsv1.Deployment{kustomized, chart} {
		c := &d.Spec.Template.Spec.Containers[0]
		repo, _, _ := strings.Cut(c.Image, ":")
		c.Image = repo
		c.Args = slices.DeleteFunc(c.Args, func(a string) bool {
			return slices.ContainsFunc(valuesDrivenArgs, func(p string) bool { return strings.HasPrefix(a, p) })
		})
	}
	if d := cmp.Diff(kustomized.Spec, chart.Spec); d != "" {
		t.Errorf("chart Deployment spec differs from config/default's (-kustomize +chart):\n%s", d)
	}
	if kustomized.Namespace != chart.Namespace {
		t.Errorf("namespace %q, config/default %q", chart.Namespace, kustomized.Namespace)
	}
}

// TestChartCopiesAreCurrent: Helm reads no file outside the chart, so the
// chart carries copies of the generated CRD and of the dashboard.
func TestChartCopiesAreCurrent(t *testing.T) {
	for copied, source := range map[string]string{
		"config/chart/stageset-controller/files/crds/stageset.io_stagesets.yaml":     "config/crd/bases/stageset.io_stagesets.yaml",
		"config/chart/stageset-controller/files/dashboards/stageset-controller.json": "config/monitoring/grafana/stageset-controller.json",
	} {
		if !bytes.Equal(readRepoFile(t, copied), readRepoFile(t, source)) {
			t.Errorf("%s differs from %s: copy it (make generate copies the CRD)", copied, source)
		}
	}
}

// kustomizeBuild builds a folder of the checkout with krusty.
func kustomizeBuild(t *testing.T, rel string) []*unstructured.Unstructured {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", rel, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs
}
