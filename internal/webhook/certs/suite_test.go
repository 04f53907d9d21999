package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

// fixture is one test's namespace and ValidatingWebhookConfiguration.
type fixture struct {
	ns, config string
}

// newFixture creates a namespace and a ValidatingWebhookConfiguration of two
// webhooks, so that tests see every webhook get the bundle. The webhooks
// call a URL nobody serves and match a resource nobody creates.
func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{ns: env.NewNamespace(t), config: testenv.RandomName("certs")}
	hook := func(name string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/validate")},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.test"}, APIVersions: []string{"v1"}, Resources: []string{"widgets"}},
			}},
		}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: f.config},
		Webhooks:   []admissionregistrationv1.ValidatingWebhook{hook("a.example.test"), hook("b.example.test")},
	}
	if err := env.Client.Create(context.Background(), vwc); err != nil {
		t.Fatalf("creating the webhook configuration: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), vwc) })
	return f
}

// options returns Options for the fixture, acting as cluster admin, with a
// fresh counter and quiet logs.
func (f fixture) options() Options {
	return Options{
		Client:            env.Client,
		Reader:            env.Client,
		Namespace:         f.ns,
		ServiceName:       "stageset-webhook",
		ServiceNamespace:  f.ns,
		WebhookConfigName: f.config,
		Validity:          time.Hour,
		RenewBefore:       20 * time.Minute,
		Failures:          prometheus.NewCounter(prometheus.CounterOpts{Name: "test_failures_total"}),
	}
}

func newManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// secret reads the certificate Secret of the fixture.
func (f fixture) secret(t *testing.T) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: DefaultSecretName}, s); err != nil {
		t.Fatalf("reading the Secret: %v", err)
	}
	return s
}

// bundles returns the caBundle of every webhook of the fixture.
func (f fixture) bundles(ctx context.Context) ([][]byte, error) {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: f.config}, vwc); err != nil {
		return nil, err
	}
	var out [][]byte
	for _, w := range vwc.Webhooks {
		out = append(out, w.ClientConfig.CABundle)
	}
	return out, nil
}

// pool builds a pool of the caBundle, as the API server does.
func pool(t *testing.T, bundle []byte) *x509.CertPool {
	t.Helper()
	p, err := poolOf(bundle)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func poolOf(bundle []byte) (*x509.CertPool, error) {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(bundle) {
		return nil, fmt.Errorf("caBundle holds no certificate: %q", bundle)
	}
	return p, nil
}

// served returns the leaf a manager serves.
func served(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	c, err := m.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	return c.Leaf
}

// runManager runs the renewer (as leader) or only the reloader of m until
// the test ends.
func runManager(t *testing.T, m *Manager, leader bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	start := func(r interface{ Start(context.Context) error }) {
		go func() { _ = r.Start(ctx); done <- struct{}{} }()
	}
	start(reloader{m})
	n := 1
	if leader {
		start(renewer{m})
		n++
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
	})
}
