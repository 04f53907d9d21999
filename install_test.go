package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	. "github.com/onsi/gomega"
	flag "github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// These tests check the install manifests of config/ (docs/install.md): the
// overlays build with kustomize and the API server accepts every object,
// the Deployment meets the restricted Pod Security Standard, and its ports,
// probes and arguments are the controller's flags.

// buildConfig builds config/<folder> as it ships.
func buildConfig(t *testing.T, folder string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := testenv.Kustomize(filepath.Join(testenv.RepoRoot(), "config", folder))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// applyDryRun server-side applies obj without persisting it: the API server
// runs its schema validation and admission on it.
func applyDryRun(ctx context.Context, obj *unstructured.Unstructured) error {
	return env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()),
		client.DryRunAll, client.ForceOwnership, client.FieldOwner("install-test"))
}

// applyAll dry-runs every object of objs, creating their namespaces for
// real first: a dry-run namespace does not exist for the objects in it.
func applyAll(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		if ns := obj.GetNamespace(); ns != "" {
			err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				t.Fatal(err)
			}
		}
	}
	for _, obj := range objs {
		if err := applyDryRun(ctx, obj); err != nil {
			t.Errorf("applying %s %s/%s: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

// find returns the object of kind named name in objs, converted to out.
func find[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string, out *T) *T {
	t.Helper()
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
				t.Fatal(err)
			}
			return out
		}
	}
	t.Fatalf("no %s %s in the build", kind, name)
	return nil
}

// controllerArgs parses the manager container's arguments with the
// controller's own flags, as main does.
func controllerArgs(dep *appsv1.Deployment) (*options, error) {
	opts := newOptions()
	fs := flag.NewFlagSet("deployment", flag.ContinueOnError)
	opts.bindFlags(fs)
	if err := fs.Parse(dep.Spec.Template.Spec.Containers[0].Args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("arguments that are no flags: %v", fs.Args())
	}
	return opts, opts.validate()
}

// Both overlays build, and the API server accepts every object they hold.
// config/default binds the controller to cluster-admin; config/multi-tenant
// does not, and runs it with Flux's multi-tenancy lockdown flags.
func TestInstallOverlaysApply(t *testing.T) {
	g := NewWithT(t)
	def, tenant := buildConfig(t, "default"), buildConfig(t, "multi-tenant")
	applyAll(t, def)
	applyAll(t, tenant)

	clusterAdmin := func(objs []*unstructured.Unstructured) []string {
		var names []string
		for _, obj := range objs {
			if obj.GetKind() == "ClusterRoleBinding" {
				b := find(t, objs, obj.GetKind(), obj.GetName(), &rbacv1.ClusterRoleBinding{})
				if b.RoleRef.Name == "cluster-admin" {
					names = append(names, b.Name)
				}
			}
		}
		return names
	}
	g.Expect(clusterAdmin(def)).To(ConsistOf("stageset-controller-cluster-admin"))
	g.Expect(clusterAdmin(tenant)).To(BeEmpty(), "multi-tenant installs grant the controller no cluster-admin")

	defOpts, err := controllerArgs(find(t, def, "Deployment", "stageset-controller", &appsv1.Deployment{}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(defOpts.defaultServiceAccount).To(BeEmpty())
	g.Expect(defOpts.aclOptions.NoCrossNamespaceRefs).To(BeFalse())
	tenantOpts, err := controllerArgs(find(t, tenant, "Deployment", "stageset-controller", &appsv1.Deployment{}))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tenantOpts.defaultServiceAccount).To(Equal("default"))
	g.Expect(tenantOpts.aclOptions.NoCrossNamespaceRefs).To(BeTrue())

	// Apart from the binding and the two flags, the overlays are the same.
	names := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, obj := range objs {
			out = append(out, obj.GetKind()+"/"+obj.GetNamespace()+"/"+obj.GetName())
		}
		return out
	}
	g.Expect(names(def)).To(ConsistOf(append(names(tenant), "ClusterRoleBinding//stageset-controller-cluster-admin")))
	for _, obj := range def {
		g.Expect(obj.GetKind() == "Namespace" || obj.GetNamespace() == "stageset-system" ||
			slices.Contains([]string{"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "ValidatingWebhookConfiguration"}, obj.GetKind())).
			To(BeTrue(), "%s %s is installed into stageset-system", obj.GetKind(), obj.GetName())
	}
}

// The API server refuses what the overlays would be refused for: the dry
// run is not a formality.
func TestInstallDryRunRefusesABrokenObject(t *testing.T) {
	dep := find(t, buildConfig(t, "default"), "Deployment", "stageset-controller", &unstructured.Unstructured{})
	g := NewWithT(t)
	g.Expect(unstructured.SetNestedField(dep.Object, "not-a-number", "spec", "replicas")).To(Succeed())
	g.Expect(applyDryRun(context.Background(), dep)).To(MatchError(ContainSubstring("replicas")))
}

// portOf returns the port of a bind address such as ":8080".
func portOf(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(port)
	return n
}

// deploymentProblems lists where the Deployment and the webhook Service
// disagree with the flags the controller runs with.
func deploymentProblems(dep *appsv1.Deployment, svc *corev1.Service) []string {
	var problems []string
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	opts, err := controllerArgs(dep)
	if err != nil {
		return []string{fmt.Sprintf("the controller refuses its arguments: %v", err)}
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for name, want := range map[string]int{
		"http-prom": portOf(opts.metricsAddr), "healthz": portOf(opts.healthAddr), "webhook": opts.webhookPort,
	} {
		if int(ports[name]) != want {
			problems = append(problems, fmt.Sprintf("containerPort %s is %d, the controller listens on %d", name, ports[name], want))
		}
	}
	if got := dep.Spec.Template.Annotations["prometheus.io/port"]; got != strconv.Itoa(portOf(opts.metricsAddr)) {
		problems = append(problems, fmt.Sprintf("prometheus.io/port is %q", got))
	}
	resolve := func(p intstr.IntOrString) int32 {
		if p.Type == intstr.String {
			return ports[p.StrVal]
		}
		return p.IntVal
	}
	for path, probe := range map[string]*corev1.Probe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || int(resolve(probe.HTTPGet.Port)) != portOf(opts.healthAddr) {
			problems = append(problems, fmt.Sprintf("the %s probe does not reach --health-probe-bind-address", path))
		}
	}
	if svc.Name != opts.webhookServiceName || int(resolve(svc.Spec.Ports[0].TargetPort)) != opts.webhookPort {
		problems = append(problems, fmt.Sprintf("Service %s targets port %s, the webhook is %s on %d",
			svc.Name, svc.Spec.Ports[0].TargetPort.String(), opts.webhookServiceName, opts.webhookPort))
	}
	for k, v := range svc.Spec.Selector {
		if dep.Spec.Template.Labels[k] != v {
			problems = append(problems, "the webhook Service does not select the controller's pods")
		}
	}
	runtimeNS := slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "RUNTIME_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace"
	})
	if !runtimeNS {
		problems = append(problems, "RUNTIME_NAMESPACE is not the pod's namespace (downward API)")
	}
	// The root filesystem is read-only; artifacts are extracted under /tmp.
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/tmp" && !m.ReadOnly }) {
		problems = append(problems, "no writable /tmp")
	}
	return problems
}

// The Deployment's ports, probes, Service and environment are those of the
// flags it passes to the controller; each kind of mismatch is caught.
func TestDeploymentMatchesTheControllerFlags(t *testing.T) {
	for _, folder := range []string{"default", "multi-tenant"} {
		objs := buildConfig(t, folder)
		dep := find(t, objs, "Deployment", "stageset-controller", &appsv1.Deployment{})
		svc := find(t, objs, "Service", "stageset-webhook", &corev1.Service{})
		NewWithT(t).Expect(deploymentProblems(dep, svc)).To(BeEmpty(), folder)
		find(t, objs, "ServiceAccount", dep.Spec.Template.Spec.ServiceAccountName, &corev1.ServiceAccount{})
	}

	objs := buildConfig(t, "default")
	for name, tc := range map[string]struct {
		mutate func(*appsv1.Deployment, *corev1.Service)
		want   string
	}{
		"webhook containerPort": {func(d *appsv1.Deployment, _ *corev1.Service) {
			d.Spec.Template.Spec.Containers[0].Ports[2].ContainerPort = 9444
		}, "containerPort webhook"},
		"webhook flag":       {func(d *appsv1.Deployment, _ *corev1.Service) { addArg(d, "--webhook-port=9444") }, "containerPort webhook"},
		"service targetPort": {func(_ *appsv1.Deployment, s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(8443) }, "targets port 8443"},
		"metrics flag":       {func(d *appsv1.Deployment, _ *corev1.Service) { addArg(d, "--metrics-bind-address=:9090") }, "containerPort http-prom"},
		"probe port": {func(d *appsv1.Deployment, _ *corev1.Service) {
			d.Spec.Template.Spec.Containers[0].LivenessProbe.HTTPGet.Port = intstr.FromInt32(8080)
		}, "/healthz probe"},
		"health flag":      {func(d *appsv1.Deployment, _ *corev1.Service) { addArg(d, "--health-probe-bind-address=:9440") }, "/readyz probe"},
		"no namespace env": {func(d *appsv1.Deployment, _ *corev1.Service) { d.Spec.Template.Spec.Containers[0].Env = nil }, "RUNTIME_NAMESPACE"},
		"misspelled flag":  {func(d *appsv1.Deployment, _ *corev1.Service) { addArg(d, "--webhok-port=9443") }, "unknown flag"},
		"bad flag value":   {func(d *appsv1.Deployment, _ *corev1.Service) { addArg(d, "--webhook-cert-mode=vault") }, "--webhook-cert-mode"},
		"no /tmp":          {func(d *appsv1.Deployment, _ *corev1.Service) { d.Spec.Template.Spec.Containers[0].VolumeMounts = nil }, "/tmp"},
	} {
		t.Run(name, func(t *testing.T) {
			dep := find(t, objs, "Deployment", "stageset-controller", &appsv1.Deployment{})
			svc := find(t, objs, "Service", "stageset-webhook", &corev1.Service{})
			tc.mutate(dep, svc)
			NewWithT(t).Expect(deploymentProblems(dep, svc)).To(ContainElement(ContainSubstring(tc.want)))
		})
	}
}

func addArg(dep *appsv1.Deployment, arg string) {
	c := &dep.Spec.Template.Spec.Containers[0]
	c.Args = append(c.Args, arg)
}
