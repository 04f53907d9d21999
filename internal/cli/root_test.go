package cli

import (
	"context"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/version"
)

func TestVersionClientOnly(t *testing.T) {
	g := NewWithT(t)
	for _, n := range callNames {
		// --client does not contact the cluster: no warning about it.
		code, out, errOut := runMain(n.arg0, "version", "--client", "--kubeconfig", noClusterKubeconfig(t))
		g.Expect(code).To(Equal(0))
		g.Expect(out).To(Equal(n.exe + ": " + version.String() + "\n"))
		g.Expect(errOut).To(BeEmpty())
	}
}

// createControllerDeployment stores a Deployment as config/manager has it
// (envtest runs no controller: it is only stored) and deletes it at the end.
func createControllerDeployment(t *testing.T, ns, image string) {
	t.Helper()
	labels := map[string]string{controllerLabel: controllerName}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: controllerName, Namespace: ns, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "sidecar", Image: "example.com/proxy:v9"},
					{Name: "manager", Image: image},
				}},
			},
		},
	}
	if err := env.Client.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), d) })
}

func TestVersionShowsTheControllerImageTag(t *testing.T) {
	g := NewWithT(t)
	kubeconfig := kubeconfigFile(t)

	// No Deployment: the client version and a warning, exit 0.
	code, out, errOut := runMain("stagesetctl", "version", "--kubeconfig", kubeconfig)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(Equal("stagesetctl: " + version.String() + "\n"))
	g.Expect(errOut).To(ContainSubstring("no stageset-controller Deployment found"))

	ns := env.NewNamespace(t)
	createControllerDeployment(t, ns, "ghcr.io/stageset/stageset-controller:v1.4.2")
	code, out, errOut = runMain("/x/flux-stageset", "version", "--kubeconfig", kubeconfig)
	g.Expect(code).To(Equal(0))
	g.Expect(errOut).To(BeEmpty())
	g.Expect(out).To(Equal("flux-stageset: " + version.String() + "\nstageset-controller: v1.4.2\n"))

	// Two installations: both, with where they run.
	other := env.NewNamespace(t)
	createControllerDeployment(t, other, "registry.local:5000/stageset-controller:v1.5.0@sha256:0123")
	_, out, _ = runMain("stagesetctl", "version", "--kubeconfig", kubeconfig)
	g.Expect(out).To(ContainSubstring("stageset-controller: v1.4.2 (" + ns + "/stageset-controller)\n"))
	g.Expect(out).To(ContainSubstring("stageset-controller: v1.5.0 (" + other + "/stageset-controller)\n"))
}

// A user who may only read Deployments of the controller's namespace still
// gets the version: version falls back from every namespace to
// --controller-namespace. One who may not read them gets a warning.
func TestVersionWithNamespacedRights(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	createControllerDeployment(t, ns, "ghcr.io/stageset/stageset-controller:v2.0.0")
	user := "system:serviceaccount:" + ns + ":reader"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	for _, obj := range []client.Object{role, binding} {
		g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	}
	kubeconfig := kubeconfigFile(t)

	g.Eventually(func(g Gomega) {
		code, out, errOut := runMain("stagesetctl", "version", "--kubeconfig", kubeconfig, "--as", user, "--controller-namespace", ns)
		g.Expect(code).To(Equal(0))
		g.Expect(errOut).To(BeEmpty())
		g.Expect(out).To(HaveSuffix("\nstageset-controller: v2.0.0\n"))
	}).Should(Succeed())

	code, out, errOut := runMain("stagesetctl", "version", "--kubeconfig", kubeconfig, "--as", user)
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(Equal("stagesetctl: " + version.String() + "\n"))
	g.Expect(errOut).To(HavePrefix("⚠️ controller version unknown: permission denied: "))
	g.Expect(errOut).To(ContainSubstring(`cannot list resource "deployments"`))
	g.Expect(strings.Count(errOut, "\n")).To(Equal(1))
}

func TestVersionWithNoCluster(t *testing.T) {
	g := NewWithT(t)
	code, out, errOut := runMain("stagesetctl", "version", "--kubeconfig", noClusterKubeconfig(t))
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(Equal("stagesetctl: " + version.String() + "\n"))
	g.Expect(errOut).To(HavePrefix("⚠️ controller version unknown: cannot reach the cluster: "))
	g.Expect(strings.Count(errOut, "\n")).To(Equal(1))
}

func TestImageVersion(t *testing.T) {
	for image, want := range map[string]string{
		"ghcr.io/stageset/stageset-controller:v1.2.3":                 "v1.2.3",
		"ghcr.io/stageset/stageset-controller:v1.2.3@sha256:abc":      "v1.2.3",
		"registry.local:5000/stageset-controller:v1.2.3":              "v1.2.3",
		"registry.local:5000/stageset-controller@sha256:abc":          "sha256:abc",
		"registry.local:5000/stageset-controller":                     "registry.local:5000/stageset-controller",
		"stageset-controller":                                         "stageset-controller",
		"":                                                            "unknown (no container)",
		"ghcr.io/stageset/stageset-controller:latest@sha256:deadbeef": "latest",
	} {
		if got := imageVersion(image); got != want {
			t.Errorf("imageVersion(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestUnknownCommandFails(t *testing.T) {
	g := NewWithT(t)
	code, _, errOut := runMain("stagesetctl", "frobnicate")
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(Equal("✗ unknown command \"frobnicate\" for \"stagesetctl\"\n"))
}

// NAME positionals complete StageSet names of the namespace, for every
// command that has one (the walk in NewCommand finds commands added later),
// and kubectl's helper kubectl_complete-stageset is answered as __complete.
func TestStageSetNamesComplete(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", true, 3)
	createStageSet(t, ns, "shoes", false, 1)
	createStageSet(t, ns, "cart", true, 3)
	createStageSet(t, env.NewNamespace(t), "elsewhere", true, 3)
	kubeconfig := kubeconfigFile(t)

	var withName []string
	walkCommands(NewRootCommand(nil), func(c *cobra.Command) {
		if nameArg.MatchString(strings.TrimPrefix(c.Use, c.Name())) {
			withName = append(withName, c.Name())
		}
	})
	g.Expect(withName).To(ContainElements("get", "reconcile", "suspend", "resume"))
	for _, name := range withName {
		code, out, errOut := runMain("stagesetctl", cobra.ShellCompRequestCmd, name, "-n", ns, "--kubeconfig", kubeconfig, "sh")
		g.Expect(code).To(Equal(0))
		g.Expect(out).To(Equal("shoes\nshop\n:4\n"), "%s NAME; stderr: %s", name, errOut)
	}

	// kubectl runs the helper with the words typed so far.
	code, out, _ := runMain("/usr/local/bin/kubectl_complete-stageset", "reconcile", "--kubeconfig", kubeconfig, "-n", ns, "")
	g.Expect(code).To(Equal(0))
	g.Expect(out).To(Equal("cart\nshoes\nshop\n:4\n"))
	// Only the first positional is a StageSet.
	_, out, _ = runMain("/usr/local/bin/kubectl_complete-stageset", "reconcile", "shop", "--kubeconfig", kubeconfig, "-n", ns, "")
	g.Expect(out).To(Equal(":4\n"))

	// -n completes namespaces.
	_, out, _ = runMain("stagesetctl", cobra.ShellCompRequestCmd, "get", "--kubeconfig", kubeconfig, "-n", ns[:len(ns)-2])
	g.Expect(strings.Split(out, "\n")).To(ContainElement(ns))

	// No cluster: no names, and no file names either.
	_, out, _ = runMain("stagesetctl", cobra.ShellCompRequestCmd, "get", "--kubeconfig", noClusterKubeconfig(t), "")
	g.Expect(out).To(Equal(":1\n"))
}
