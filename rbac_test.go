package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/controller"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// These tests run the controller as the ServiceAccount of the shipped RBAC
// (config/rbac, built with kustomize into a namespace of the test), with a
// token of the TokenRequest API: no system:masters, no rights but the
// generated ClusterRole and the leader election Role.

// controllerIdentity is the controller's RBAC installed from a kustomize
// folder of config/.
type controllerIdentity struct {
	// namespace the controller runs in: its ServiceAccount, Lease and Role.
	namespace string
	// clusterRole is the name of the installed ClusterRole of role.yaml.
	clusterRole string
	// config authenticates as the controller's ServiceAccount.
	config *rest.Config
}

// installRBAC builds config/<folder> with kustomize into a new namespace
// (and a name prefix, so that cluster-scoped objects of tests do not
// collide), creates what it holds and returns the controller's identity.
func installRBAC(t *testing.T, folder string) controllerIdentity {
	t.Helper()
	ns := env.NewNamespace(t)
	// The controller's namespace: its Lease and its integrity key live there.
	t.Setenv("RUNTIME_NAMESPACE", ns)
	id := controllerIdentity{namespace: ns}
	var sa *corev1.ServiceAccount
	for _, obj := range buildRBAC(t, folder, ns) {
		switch obj.GetKind() {
		case "ServiceAccount":
			sa = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: obj.GetNamespace(), Name: obj.GetName()}}
		case "ClusterRole":
			id.clusterRole = obj.GetName()
		}
		createOrKeep(t, obj)
	}
	if sa == nil || id.clusterRole == "" {
		t.Fatalf("config/%s holds no ServiceAccount or no ClusterRole", folder)
	}
	token := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
	if err := env.Client.SubResource("token").Create(context.Background(), sa, token); err != nil {
		t.Fatalf("requesting a token for the controller's ServiceAccount: %v", err)
	}
	id.config = &rest.Config{
		Host:            env.Config.Host,
		BearerToken:     token.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: env.Config.CAData},
	}
	return id
}

// buildRBAC runs kustomize on config/<folder> with namespace ns.
func buildRBAC(t *testing.T, folder, ns string) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, filepath.Join(testenv.RepoRoot(), "config", folder))
	if err != nil {
		t.Fatal(err)
	}
	return kustomizeIn(t, dir, "namespace: "+ns+"\nnamePrefix: "+ns+"-\nresources: ["+rel+"]\n")
}

// kustomizeIn writes kustomization into dir and builds it.
func kustomizeIn(t *testing.T, dir, kustomization string) []*unstructured.Unstructured {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	objs, err := testenv.Kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// createOrKeep creates obj, keeping an existing one (an overlay installed
// over its base), and deletes cluster-scoped objects when the test ends.
func createOrKeep(t *testing.T, obj *unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, obj); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return
		}
		t.Fatalf("creating %s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
	if obj.GetNamespace() == "" {
		t.Cleanup(func() { _ = env.Client.Delete(ctx, obj) })
	}
}

// dropRule removes the rules of the installed ClusterRole that grant verb
// on resource.
func dropRule(t *testing.T, id controllerIdentity, resource, verb string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.ClusterRole{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: id.clusterRole}, role); err != nil {
		t.Fatal(err)
	}
	var kept []rbacv1.PolicyRule
	for _, rule := range role.Rules {
		grants := false
		for _, r := range rule.Resources {
			for _, v := range rule.Verbs {
				grants = grants || (r == resource && v == verb)
			}
		}
		if !grants {
			kept = append(kept, rule)
		}
	}
	if len(kept) == len(role.Rules) {
		t.Fatalf("ClusterRole %s has no rule granting %s on %s", id.clusterRole, verb, resource)
	}
	role.Rules = kept
	if err := env.Client.Update(ctx, role); err != nil {
		t.Fatal(err)
	}
}

// grantTenant makes the service account sa of ns, allowed to manage
// ConfigMaps and Jobs in ns only: what a tenant's deployer typically has.
func grantTenant(t *testing.T, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range []client.Object{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}},
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
				{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
		},
	} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
}

// gateStage is a stage whose ConfigMap "gate" fails its health check when
// its state is "broken".
func gateStage(name, path string) stagesetv1.Stage {
	return stagesetv1.Stage{Name: name, Path: path, HealthCheckExprs: []kustomize.CustomHealthCheck{{
		APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{
			Current: "!has(data.state) || data.state != 'broken'",
			Failed:  "has(data.state) && data.state == 'broken'",
		},
	}}}
}

func gateConfigMap(state string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: gate\ndata:\n  state: " + state + "\n"
}

// With exactly the generated RBAC and --default-service-account, the
// controller rolls out a StageSet with a migration and a pre action, rolls
// a failed revision back, and tears it down on deletion, with leader
// election on: everything it writes of the tenant goes through the tenant's
// service account, and its own rights cover the rest.
func TestControllerRunsWithTheGeneratedRBAC(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	id := installRBAC(t, "rbac")
	tenant := env.NewNamespace(t)
	grantTenant(t, tenant, "deployer")
	maintenance := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "maintenance"}, Data: map[string]string{"mode": "off"}}
	g.Expect(env.Client.Create(ctx, maintenance)).To(Succeed())

	publishRepo(t, tenant, "rev-1", map[string]string{
		"db/migrate.yaml": migrationJob, "db/app.yaml": appConfigMap("one"), "web/gate.yaml": gateConfigMap("fine"),
	})
	web := gateStage("web", "./web")
	web.Actions = &stagesetv1.StageActions{Pre: []stagesetv1.Action{{Name: "maintenance-on", Patch: &stagesetv1.PatchAction{
		Target: stagesetv1.ObjectReference{APIVersion: "v1", Kind: "ConfigMap", Name: "maintenance"},
		Type:   "merge", Patch: `{"data":{"mode":"on"}}`,
	}}}}
	obj := newStageSet(tenant, stagesetv1.Stage{Name: "db", Path: "./db"}, web)
	obj.Spec.RollbackOnFailure = true
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	startControllerWith(t, id.config, "--default-service-account=deployer", "--enable-leader-election")

	// The migration Job is created as the tenant; the bed runs no Job
	// controller, so the test completes it.
	var jobs []jobRef
	g.Eventually(func() []jobRef { jobs = jobsIn(g, tenant); return jobs }, testenv.Timeout, testenv.Poll).Should(HaveLen(1))
	g.Expect(testenv.FinishJob(ctx, env.Client, tenant, jobs[0].name, true, "")).To(Succeed())
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(maintenance), maintenance)).To(Succeed())
	g.Expect(maintenance.Data).To(HaveKeyWithValue("mode", "on"), "the pre action patched as the tenant")

	// Leader election ran with the namespaced Role.
	lease := &coordinationv1.Lease{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: id.namespace, Name: controller.ControllerName + "-leader-election"}, lease)).To(Succeed())
	g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).NotTo(BeEmpty())

	// A revision that fails the web stage is rolled back to the snapshot;
	// the ledger keeps the migration from running again.
	publishRepo(t, tenant, "rev-2", map[string]string{
		"db/migrate.yaml": migrationJob, "db/app.yaml": appConfigMap("two"), "web/gate.yaml": gateConfigMap("broken"),
	})
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/RolledBack"))
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("rolled back to revision rev-1"))
	g.Expect(obj.Status.Migrations).To(HaveLen(1))
	app, gate := &corev1.ConfigMap{}, &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "app"}, app)).To(Succeed())
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "gate"}, gate)).To(Succeed())
	g.Expect(app.Data).To(HaveKeyWithValue("v", "one"))
	g.Expect(gate.Data).To(HaveKeyWithValue("state", "fine"))
	g.Eventually(func() []string { return eventReasons(g, tenant) }, testenv.Timeout, testenv.Poll).
		Should(ContainElement(stagesetv1.RolledBackReason), "the controller records events")

	// Deletion tears the stages down as the tenant and lifts the finalizer.
	g.Expect(env.Client.Delete(ctx, obj)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj))
	}, testenv.Timeout, testenv.Poll).Should(BeTrue())
	g.Expect(apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "app"}, app))).To(BeTrue())
}

// Each generated rule is needed: without impersonate on serviceaccounts,
// the controller cannot act as the tenant and applies nothing.
func TestControllerWithoutImpersonateAppliesNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	id := installRBAC(t, "rbac")
	dropRule(t, id, "serviceaccounts", "impersonate")
	tenant := env.NewNamespace(t)
	grantTenant(t, tenant, "deployer")
	publishRepo(t, tenant, "rev-1", map[string]string{"app.yaml": appConfigMap("one")})
	obj := newStageSet(tenant, stagesetv1.Stage{Name: "app", Path: "./"})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	startControllerWith(t, id.config, "--default-service-account=deployer")
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/StageFailed"))
	g.Expect(apierrors.IsNotFound(env.Client.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "app"}, &corev1.ConfigMap{}))).To(BeTrue())

	// The API server refuses the impersonation itself. (The apply error
	// the controller reports is its REST mapper's discovery failing.)
	impersonating := rest.CopyConfig(id.config)
	impersonating.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + tenant + ":deployer"}
	clientset, err := kubernetes.NewForConfig(impersonating)
	g.Expect(err).NotTo(HaveOccurred())
	_, err = clientset.CoreV1().ConfigMaps(tenant).List(ctx, metav1.ListOptions{})
	g.Expect(apierrors.IsForbidden(err)).To(BeTrue(), "got %v", err)
	// Kubernetes 1.37 names the constrained impersonation verb it checked
	// last (impersonate-on:serviceaccount:<verb>).
	g.Expect(err.Error()).To(ContainSubstring("cannot impersonate"))
}

// config/rbac lets the controller write nothing of a tenant with its own
// identity: a StageSet that impersonates no one fails until the
// config/rbac-cluster-admin overlay is installed.
func TestOnlyTheClusterAdminOverlayLetsTheControllerApplyAsItself(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	id := installRBAC(t, "rbac")
	tenant := env.NewNamespace(t)
	publishRepo(t, tenant, "rev-1", map[string]string{"app.yaml": appConfigMap("one")})
	obj := newStageSet(tenant, stagesetv1.Stage{Name: "app", Path: "./"})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())

	startControllerWith(t, id.config)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/StageFailed"))
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("forbidden"))

	for _, o := range buildRBAC(t, "rbac-cluster-admin", id.namespace) {
		createOrKeep(t, o)
	}
	requestReconcile(g, obj, "cluster-admin")
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
}

// eventReasons lists the reasons of the events in ns.
func eventReasons(g Gomega, ns string) []string {
	var events corev1.EventList
	g.Expect(env.Client.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	return reasons
}
