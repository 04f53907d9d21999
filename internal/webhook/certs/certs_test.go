package certs

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

func TestInitCreatesCertificateFromNothing(t *testing.T) {
	f := newFixture(t)
	m := newManager(t, f.options())
	if err := m.Init(context.Background()); err != nil {
		t.Fatal(err)
	}

	secret := f.secret(t)
	if secret.Type != SecretType {
		t.Errorf("Secret type %q, want %q", secret.Type, SecretType)
	}
	mat, err := parseMaterial(secret.Data)
	if err != nil {
		t.Fatal(err)
	}
	bundles, err := f.bundles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bundles {
		if !bytes.Equal(b, mat.ca.certPEM) {
			t.Errorf("webhook %d: caBundle is not the CA of the Secret", i)
		}
	}
	leaf := served(t, m)
	if !bytes.Equal(leaf.Raw, mat.serving.cert.Raw) {
		t.Error("the served certificate is not the one of the Secret")
	}
	roots := pool(t, bundles[0])
	for _, name := range []string{"stageset-webhook", "stageset-webhook." + f.ns, "stageset-webhook." + f.ns + ".svc", "stageset-webhook." + f.ns + ".svc.cluster.local"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other." + f.ns + ".svc", Roots: roots}); err == nil {
		t.Error("the serving certificate verifies for a name it is not for")
	}
	if got := leaf.NotAfter.Sub(time.Now()); got > time.Hour || got < 50*time.Minute {
		t.Errorf("serving certificate valid for %s more, want about the 1h validity", got)
	}
	if got := mat.ca.cert.NotAfter.Sub(time.Now()); got < 3*time.Hour {
		t.Errorf("CA valid for %s more, want 4×validity", got)
	}

	// A restart loads the same certificate rather than making another.
	again := newManager(t, f.options())
	if err := again.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(served(t, again).Raw, leaf.Raw) || f.secret(t).ResourceVersion != secret.ResourceVersion {
		t.Error("a second start replaced the certificate")
	}
}

func TestReplicasStartingTogetherShareOneCA(t *testing.T) {
	f := newFixture(t)
	const replicas = 4
	for round := range 3 {
		opts := f.options()
		opts.SecretName = testenv.RandomName("race")
		clock := clocktesting.NewFakeClock(time.Now())
		opts.Clock = clock
		managers := make([]*Manager, replicas)
		for i := range managers {
			managers[i] = newManager(t, opts)
		}
		// All start at once, then all renew at once as if each were the
		// leader: the API server lets one write win each time.
		together := func(do func(m *Manager) error) {
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, replicas)
			for i, m := range managers {
				wg.Go(func() {
					<-start
					errs[i] = do(m)
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		together(func(m *Manager) error { return m.Init(context.Background()) })
		first := served(t, managers[0])
		for i, m := range managers {
			if !bytes.Equal(served(t, m).Raw, first.Raw) {
				t.Errorf("round %d: replica %d serves another certificate after start", round, i)
			}
		}
		clock.Step(45 * time.Minute)
		together(func(m *Manager) error { return m.Renew(context.Background()) })
		secret := &corev1.Secret{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: opts.SecretName}, secret); err != nil {
			t.Fatal(err)
		}
		for i, m := range managers {
			if !bytes.Equal(served(t, m).Raw, mustParse(t, secret).serving.cert.Raw) {
				t.Errorf("round %d: replica %d serves a certificate that is not the stored one", round, i)
			}
		}
		if bytes.Equal(served(t, managers[0]).Raw, first.Raw) {
			t.Errorf("round %d: the serving certificate was not renewed", round)
		}
		bundles, err := f.bundles(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bundles[0], secret.Data[caCertKey]) {
			t.Errorf("round %d: caBundle is not the stored CA", round)
		}
	}
}

func TestForeignOrDamagedSecretIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		secret corev1.Secret
	}{
		{"foreign type", corev1.Secret{Type: corev1.SecretTypeTLS, Data: map[string][]byte{"tls.crt": []byte("x"), "tls.key": []byte("y")}}},
		{"damaged", corev1.Secret{Type: SecretType, Data: map[string][]byte{caCertKey: []byte("garbage")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			secret := tc.secret.DeepCopy()
			secret.ObjectMeta = metav1.ObjectMeta{Namespace: f.ns, Name: DefaultSecretName}
			if err := env.Client.Create(context.Background(), secret); err != nil {
				t.Fatal(err)
			}
			opts := f.options()
			m := newManager(t, opts)
			err := m.Init(context.Background())
			if err == nil {
				t.Fatal("Init accepted the Secret")
			}
			if tc.secret.Type != SecretType && !errors.Is(err, ErrForeignSecret) {
				t.Errorf("error %v does not wrap ErrForeignSecret", err)
			}
			// The leader refuses it too, and counts the failure.
			if err := m.Renew(context.Background()); err == nil {
				t.Fatal("Renew accepted the Secret")
			}
			if got := testutil.ToFloat64(opts.Failures); got != 1 {
				t.Errorf("failures = %v, want 1", got)
			}
			if after := f.secret(t); after.ResourceVersion != secret.ResourceVersion {
				t.Error("the Secret was changed")
			}
			if _, err := m.GetCertificate(nil); err == nil {
				t.Error("a certificate is served")
			}
		})
	}
}

func TestRenewalFailureCountsEachAttempt(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	admin := newManager(t, f.options())
	if err := admin.Init(ctx); err != nil {
		t.Fatal(err)
	}
	before := f.secret(t)

	// A ServiceAccount that may read the Secret and the configuration, and
	// write neither.
	sa := "system:serviceaccount:" + f.ns + ":webhook"
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "read-cert"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}},
	}
	clusterRole := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: f.ns + "-read-webhooks"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"validatingwebhookconfigurations"}, Verbs: []string{"get"}}},
	}
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: f.ns, Name: "webhook"}}
	for _, obj := range []client.Object{role, clusterRole,
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "read-cert"}, Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: clusterRole.Name}, Subjects: subject, RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: clusterRole.Name}},
	} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: sa, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + f.ns, "system:authenticated"}}
	limited, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	// The clock is past the renewal time of the serving certificate.
	opts := f.options()
	opts.Client, opts.Reader = limited, limited
	opts.Clock = clocktesting.NewFakeClock(time.Now().Add(45 * time.Minute))
	m := newManager(t, opts)
	if err := m.Init(ctx); err != nil {
		t.Fatalf("a replica that only reads must start: %v", err)
	}
	for attempt := 1; attempt <= 3; attempt++ {
		if err := m.Renew(ctx); err == nil {
			t.Fatal("renewal succeeded without the right to update the Secret")
		}
		if got := testutil.ToFloat64(opts.Failures); got != float64(attempt) {
			t.Fatalf("after %d attempts, failures = %v", attempt, got)
		}
	}
	if f.secret(t).ResourceVersion != before.ResourceVersion {
		t.Error("the Secret changed")
	}

	// With the rights, the same manager renews and the count stops.
	opts.Client, opts.Reader = env.Client, env.Client
	m.opts.Client, m.opts.Reader = env.Client, env.Client
	if err := m.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(opts.Failures); got != 3 {
		t.Errorf("failures = %v after a successful renewal, want 3", got)
	}
	if bytes.Equal(served(t, m).Raw, mustParse(t, before).serving.cert.Raw) {
		t.Error("the serving certificate was not renewed")
	}
}

func mustParse(t *testing.T, s *corev1.Secret) *material {
	t.Helper()
	mat, err := parseMaterial(s.Data)
	if err != nil {
		t.Fatal(err)
	}
	return mat
}
