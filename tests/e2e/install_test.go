package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/testenv"
	stagesetwebhook "github.com/stageset/stageset-controller/internal/webhook"
)

// controllerNamespace is where config/default installs the controller.
const controllerNamespace = "stageset-system"

// config/default installed as `kubectl apply -k` would (server-side apply,
// as admin) is all the controller needs: run out of process with a token of
// the ServiceAccount the manifests create (not admin), with the Deployment's
// own arguments, it keeps the webhook's caBundle current, serves the
// webhook the API server calls, holds its Lease and rolls the sample
// StageSet of config/samples out to Ready.
func TestDefaultInstallRunsWithItsOwnServiceAccount(t *testing.T) {
	objs, err := testenv.Kustomize(filepath.Join(testenv.RepoRoot(), "config", "default"))
	if err != nil {
		t.Fatal(err)
	}
	runInstalled(t, objs)
}

// The same with the Helm chart, rendered with its default values as `helm
// install --namespace stageset-system --create-namespace` would (by
// tests/install/cmd/render: this module does not take the Helm library).
func TestChartInstallRunsWithItsOwnServiceAccount(t *testing.T) {
	render := exec.Command("go", "run", "./cmd/render")
	render.Dir = filepath.Join(testenv.RepoRoot(), "tests", "install")
	var stderr strings.Builder
	render.Stderr = &stderr
	out, err := render.Output()
	if err != nil {
		t.Fatalf("rendering the chart: %v\n%s", err, stderr.String())
	}
	objs := []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": controllerNamespace},
	}}}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(obj) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
	runInstalled(t, objs)
}

// runInstalled applies objs, an install of the controller into
// stageset-system, to a local control plane of its own, runs the controller
// binary with the installed ServiceAccount's token and the installed
// Deployment's arguments, and rolls the sample StageSet out.
//
// A control plane of its own: the shared one runs an admin controller that
// would reconcile the sample too, and a webhook with failurePolicy Fail
// would stand in front of every other test's StageSets.
func runInstalled(t *testing.T, objs []*unstructured.Unstructured) {
	g := NewWithT(t)
	ctx := context.Background()
	root := testenv.RepoRoot()
	logs, err := os.Create(filepath.Join(t.TempDir(), "cluster.log"))
	g.Expect(err).NotTo(HaveOccurred())
	// The Flux source CRDs only: the install brings the StageSet CRD.
	local, err := localcluster.Start(ctx, localcluster.Options{
		BinDir:   testenv.AssetsDirFor(root),
		KwokDir:  localcluster.KwokDir(root),
		CRDPaths: []string{filepath.Join(root, "config", "testdata", "crds")},
		Scheme:   scheme.New(),
		Logs:     logs,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = local.Stop() })
	c := local.Client

	// Namespaces, then CRDs, then the rest, as kubectl and Helm order them.
	first := map[string]int{"Namespace": 0, "CustomResourceDefinition": 1}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int {
		rank := func(o *unstructured.Unstructured) int {
			if r, ok := first[o.GetKind()]; ok {
				return r
			}
			return 2
		}
		return rank(a) - rank(b)
	})
	var args []string
	for _, obj := range objs {
		g.Expect(c.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("kubectl"), client.ForceOwnership)).
			To(Succeed(), "%s %s", obj.GetKind(), obj.GetName())
		if obj.GetKind() == "CustomResourceDefinition" {
			// The StageSet kind is served before the objects that need it.
			g.Eventually(func() error {
				return c.List(ctx, &stagesetv1.StageSetList{})
			}, timeout, poll).Should(Succeed())
		}
		if obj.GetKind() == "Deployment" {
			args, err = containerArgs(obj)
			g.Expect(err).NotTo(HaveOccurred())
		}
	}
	g.Expect(args).NotTo(BeEmpty())

	// The Deployment is left as shipped: its pod passes the restricted Pod
	// Security admission the namespace enforces and becomes Available, but
	// kwok runs no container, so it holds no Lease and serves no webhook.
	// The controller under test is the binary run below.
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: controllerNamespace, Name: "stageset-controller"}}
	g.Eventually(func() int32 {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(dep), dep)).To(Succeed())
		return dep.Status.AvailableReplicas
	}, timeout, poll).Should(Equal(int32(1)), "the controller's pod is admitted and Available")

	// The API server cannot reach the in-cluster Service (the pod is
	// simulated): the webhook points at the binary on loopback, whose
	// certificate is for "localhost" (--webhook-service-name=localhost).
	port := freeLoopbackPort(t)
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "stageset-controller"}}
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(vwc), vwc)).To(Succeed())
	g.Expect(vwc.Webhooks[0].ClientConfig.CABundle).To(BeEmpty())
	vwc.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{
		URL: ptr.To(fmt.Sprintf("https://localhost:%d%s", port, stagesetwebhook.ValidatePath)),
	}
	g.Expect(c.Update(ctx, vwc)).To(Succeed())

	kubeconfig := serviceAccountKubeconfig(t, local, controllerNamespace, "stageset-controller")
	startInstalledController(t, kubeconfig, append(args,
		"--events-addr=", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--requeue-dependency=2s",
		"--webhook-service-name=localhost", fmt.Sprintf("--webhook-port=%d", port))...)

	g.Eventually(func() []byte {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(vwc), vwc)).To(Succeed())
		return vwc.Webhooks[0].ClientConfig.CABundle
	}, timeout, poll).ShouldNot(BeEmpty(), "the controller writes its CA into the caBundle")

	// The sample, as `make run` publishes it.
	files, err := testenv.FilesFromDir(filepath.Join(root, "config", "samples", "shop"))
	g.Expect(err).NotTo(HaveOccurred())
	tarball, err := testenv.Tarball(files)
	g.Expect(err).NotTo(HaveOccurred())
	artifact := artifacts.PublishRaw("install/shop.tar.gz", "main@sha1:"+strings.Repeat("a", 40), tarball)
	_, err = testenv.CreateSource(ctx, c, stagesetv1.GitRepositoryKind, "default", "shop", artifact)
	g.Expect(err).NotTo(HaveOccurred())
	data, err := os.ReadFile(filepath.Join(root, "config", "samples", "stageset_shop.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	sample := &stagesetv1.StageSet{}
	g.Expect(yaml.UnmarshalStrict(data, sample)).To(Succeed())

	// The API server calls the webhook: a StageSet the schema accepts but
	// the controller's rules refuse is denied at create time.
	bad := sample.DeepCopy()
	bad.Name = "bad-window"
	bad.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowAllow, Schedule: "every tuesday", Duration: metav1.Duration{Duration: time.Hour},
	}}
	g.Eventually(func() error { return c.Create(ctx, bad.DeepCopy()) }, timeout, poll).
		Should(MatchError(And(ContainSubstring("denied the request"), ContainSubstring("schedule"))))

	g.Expect(c.Create(ctx, sample)).To(Succeed())
	g.Eventually(func() string {
		g.Expect(c.Get(ctx, client.ObjectKeyFromObject(sample), sample)).To(Succeed())
		return testenv.ReadyReason(sample)
	}, 3*time.Minute, poll).Should(Equal("True/Succeeded"), func() string { return message(sample) })
	g.Expect(sample.Status.Stages).To(HaveLen(3))
}

// containerArgs returns the arguments of the Deployment's first container.
func containerArgs(obj *unstructured.Unstructured) ([]string, error) {
	dep := &appsv1.Deployment{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, dep); err != nil {
		return nil, err
	}
	return dep.Spec.Template.Spec.Containers[0].Args, nil
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates to the
// cluster with a TokenRequest token of the ServiceAccount ns/name.
func serviceAccountKubeconfig(t *testing.T, local *localcluster.Cluster, ns, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	token := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}
	if err := local.Client.SubResource("token").Create(context.Background(), sa, token); err != nil {
		t.Fatalf("requesting a token for %s/%s: %v", ns, name, err)
	}
	cfg, err := clientcmd.LoadFromFile(local.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		// Only the token: no client certificate of the admin is kept.
		*auth = clientcmdapi.AuthInfo{Token: token.Status.Token}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startInstalledController runs the controller binary as the Deployment
// would, in the controller's namespace, until the test ends; its log is
// shown when the test fails.
func startInstalledController(t *testing.T, kubeconfig string, args ...string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(controllerBinary, append([]string{"--kubeconfig=" + kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "RUNTIME_NAMESPACE="+controllerNamespace)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if data, err := os.ReadFile(out.Name()); err == nil && t.Failed() {
			t.Logf("controller log (last 4 KiB):\n%s", tail(data, 4096))
		}
	})
}
