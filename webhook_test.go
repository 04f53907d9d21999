package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
	stagesetwebhook "github.com/stageset/stageset-controller/internal/webhook"
	"github.com/stageset/stageset-controller/internal/webhook/certs"
)

// freePort returns a loopback TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// webhookConfig registers the controller's webhook in the API server for
// StageSets of namespace ns only (other tests of the package share the API
// server), at https://localhost:<port>: the controller runs with
// --webhook-service-name=localhost, so "localhost" is one of the names of
// its serving certificate. The caBundle is left empty: the controller
// fills it in.
func webhookConfig(t *testing.T, ns string, port int) *admissionregistrationv1.ValidatingWebhookConfiguration {
	t.Helper()
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "stageset-controller"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "validate.stageset.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL: ptr.To(fmt.Sprintf("https://localhost:%d%s", port, stagesetwebhook.ValidatePath)),
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{stagesetv1.GroupName}, APIVersions: []string{"v1"}, Resources: []string{"stagesets"},
				},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To(int32(10)),
		}},
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, vwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), vwc) })
	return vwc
}

// badWindow is a StageSet the webhook refuses: its update window's
// schedule is no cron expression and its time zone does not exist.
func badWindow(ns, name string) *stagesetv1.StageSet {
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
	obj.Name = name
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{
		Type: stagesetv1.UpdateWindowAllow, Schedule: "every tuesday", TimeZone: "Mars/Olympus",
		Duration: metav1.Duration{Duration: time.Hour},
	}}
	return obj
}

// The controller serves its admission webhook with a certificate it made
// itself, as the shipped ServiceAccount: the CA reaches the
// ValidatingWebhookConfiguration, the real API server calls the webhook
// over TLS, and a bad StageSet is refused at create time with every
// problem at its field. Then, with certificates that live seconds, a loop
// of admission requests runs through serving certificate and CA rotations
// with no request failing.
func TestAdmissionWebhookServesWithItsOwnRotatingCertificates(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	id := installRBAC(t, "rbac")
	ns := env.NewNamespace(t)
	port := freePort(t)
	vwc := webhookConfig(t, ns, port)

	// Serving certificates of 8 s, renewed 6 s before expiry (every ~2 s);
	// the CA lives 4×8 s, so it is replaced within the loop below too.
	startControllerWith(t, id.config, "--enable-webhook=true", "--enable-leader-election",
		fmt.Sprintf("--webhook-port=%d", port), "--webhook-service-name=localhost",
		"--webhook-cert-validity=8s", "--webhook-cert-renew-before=6s")

	g.Eventually(func() []byte {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vwc), vwc)).To(Succeed())
		return vwc.Webhooks[0].ClientConfig.CABundle
	}, testenv.Timeout, testenv.Poll).ShouldNot(BeEmpty(), "the controller writes its CA into the caBundle")
	caBefore := string(vwc.Webhooks[0].ClientConfig.CABundle)

	// Refused at create, by the webhook, with both problems at their paths.
	var err error
	g.Eventually(func() error {
		err = env.Client.Create(ctx, badWindow(ns, "bad"))
		return err
	}, testenv.Timeout, testenv.Poll).Should(MatchError(ContainSubstring("denied the request")))
	g.Expect(err.Error()).To(ContainSubstring("spec.updateWindows[0].schedule"))
	g.Expect(err.Error()).To(ContainSubstring("spec.updateWindows[0].timeZone"))
	good := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
	g.Expect(env.Client.Create(ctx, good)).To(Succeed())

	// Under load through rotations: every good request is admitted, every
	// bad one refused by the webhook itself, never by a TLS failure.
	var requests, failures atomic.Int64
	var firstFailure atomic.Value
	deadline := time.Now().Add(40 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		requests.Add(2)
		obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
		obj.Name = fmt.Sprintf("load-%d", i)
		if err := env.Client.Create(ctx, obj, client.DryRunAll); err != nil {
			failures.Add(1)
			firstFailure.CompareAndSwap(nil, err.Error())
		}
		if err := env.Client.Create(ctx, badWindow(ns, fmt.Sprintf("bad-%d", i)), client.DryRunAll); err == nil ||
			!apierrors.IsInvalid(err) && !strings.Contains(err.Error(), "denied the request") {
			failures.Add(1)
			firstFailure.CompareAndSwap(nil, fmt.Sprint(err))
		}
	}
	t.Logf("%d admission requests through the rotations", requests.Load())
	g.Expect(failures.Load()).To(BeZero(), "failed admission requests (first: %v)", firstFailure.Load())
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vwc), vwc)).To(Succeed())
	g.Expect(string(vwc.Webhooks[0].ClientConfig.CABundle)).NotTo(Equal(caBefore), "the CA was replaced during the loop")
}

// The shipped webhook manifests (config/webhook) name what the controller
// serves and keeps current by default: the configuration it writes the CA
// into (and the only one its ClusterRole may update), the Service its
// certificate is for, the path and the port. The API server accepts them.
func TestShippedWebhookManifestsMatchTheController(t *testing.T) {
	g := NewWithT(t)
	defaults := parseFlags(t)
	var vwc *admissionregistrationv1.ValidatingWebhookConfiguration
	var svc *corev1.Service
	for _, obj := range buildRBAC(t, "webhook", "stageset-system") {
		switch obj.GetKind() {
		case "ValidatingWebhookConfiguration":
			vwc = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, vwc)).To(Succeed())
		case "Service":
			svc = &corev1.Service{}
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, svc)).To(Succeed())
		}
	}
	g.Expect(vwc).NotTo(BeNil())
	g.Expect(svc).NotTo(BeNil())
	// buildRBAC prefixes names with the namespace, as an overlay may.
	prefix := "stageset-system-"
	g.Expect(vwc.Name).To(Equal(prefix + defaults.webhookConfigName))
	g.Expect(svc.Name).To(Equal(prefix + defaults.webhookServiceName))
	g.Expect(vwc.Webhooks).To(HaveLen(1))
	ref := vwc.Webhooks[0].ClientConfig.Service
	g.Expect(ref.Name).To(Equal(svc.Name))
	g.Expect(*ref.Path).To(Equal(stagesetwebhook.ValidatePath))
	g.Expect(svc.Spec.Ports[0].TargetPort.IntValue()).To(Equal(defaults.webhookPort))
	g.Expect(*ref.Port).To(Equal(svc.Spec.Ports[0].Port))
	g.Expect(*vwc.Webhooks[0].FailurePolicy).To(Equal(admissionregistrationv1.Fail))
	g.Expect(env.Client.Create(context.Background(), vwc, client.DryRunAll)).To(Succeed())

	var role *rbacv1.ClusterRole
	for _, obj := range buildRBAC(t, "rbac", "stageset-system") {
		if obj.GetKind() == "ClusterRole" {
			role = &rbacv1.ClusterRole{}
			g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, role)).To(Succeed())
		}
	}
	g.Expect(role).NotTo(BeNil())
	g.Expect(role.Rules).To(ContainElement(And(
		HaveField("Resources", ContainElement("validatingwebhookconfigurations")),
		HaveField("ResourceNames", ConsistOf(defaults.webhookConfigName)),
	)), "the ClusterRole lets the controller update its own configuration only")
}

// Two controller processes share one CA and one serving certificate
// through the Secret: each serves the certificate the other
// serves, and the API server's caBundle verifies both.
func TestTwoControllersShareOneWebhookCertificate(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	id := installRBAC(t, "rbac")
	ns := env.NewNamespace(t)
	ports := []int{freePort(t), freePort(t)}
	vwc := webhookConfig(t, ns, ports[0])
	// One after the other: in one test process, two controllers starting at
	// the same instant race on process-wide settings (feature gates,
	// jitter) that two real processes do not share. Replicas that create
	// the Secret at the same instant are TestReplicasStartingTogetherShareOneCA
	// (internal/webhook/certs).
	start := func(port int) {
		startControllerWith(t, id.config, "--enable-webhook=true", "--enable-leader-election",
			fmt.Sprintf("--webhook-port=%d", port), "--webhook-service-name=localhost")
	}
	start(ports[0])
	g.Eventually(func() error {
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ports[0]))
		if err == nil {
			conn.Close()
		}
		return err
	}, testenv.Timeout, testenv.Poll).Should(Succeed())
	start(ports[1])

	g.Eventually(func() []byte {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(vwc), vwc)).To(Succeed())
		return vwc.Webhooks[0].ClientConfig.CABundle
	}, testenv.Timeout, testenv.Poll).ShouldNot(BeEmpty())
	pool := x509.NewCertPool()
	g.Expect(pool.AppendCertsFromPEM(vwc.Webhooks[0].ClientConfig.CABundle)).To(BeTrue())

	served := make([][]byte, len(ports))
	for i, port := range ports {
		g.Eventually(func() error {
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: "localhost"})
			if err != nil {
				return err
			}
			defer conn.Close()
			served[i] = conn.ConnectionState().PeerCertificates[0].Raw
			return nil
		}, testenv.Timeout, testenv.Poll).Should(Succeed(), "controller %d serves a certificate the caBundle verifies", i)
	}
	g.Expect(served[1]).To(Equal(served[0]), "both serve the one certificate of the Secret")

	var secrets corev1.SecretList
	g.Expect(env.Client.List(ctx, &secrets, client.InNamespace(id.namespace))).To(Succeed())
	var ours []string
	for _, s := range secrets.Items {
		if s.Type == certs.SecretType {
			ours = append(ours, s.Name)
		}
	}
	g.Expect(ours).To(ConsistOf(certs.DefaultSecretName), "one certificate Secret for both")
}
