package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// recorder is a local HTTP server that answers with a fixed status and
// records the requests it gets.
type recorder struct {
	*httptest.Server
	hits atomic.Int64

	mu     sync.Mutex
	method string
	header http.Header
	body   string
}

func newRecorder(t *testing.T, status int, extra func(w http.ResponseWriter)) *recorder {
	rec := &recorder{}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec.hits.Add(1)
		body, _ := io.ReadAll(req.Body)
		rec.mu.Lock()
		rec.method, rec.header, rec.body = req.Method, req.Header.Clone(), string(body)
		rec.mu.Unlock()
		if extra != nil {
			extra(w)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "served")
	}))
	t.Cleanup(rec.Close)
	return rec
}

func httpAction(h stagesetv1.HTTPAction) stagesetv1.Action {
	return stagesetv1.Action{Name: "notify", HTTP: &h}
}

func loopbackRunner(ns string) *Runner {
	r := runner(ns)
	r.AllowedHosts = []string{"127.0.0.1"}
	return r
}

func TestHTTP_sendsTheRequest(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hook-headers"},
		Data:       map[string][]byte{"Authorization": []byte("Bearer s3cret"), "X-Team": []byte("platform")},
	}
	g.Expect(env.Client.Create(context.Background(), secret)).To(Succeed())
	srv := newRecorder(t, http.StatusAccepted, nil)

	err := loopbackRunner(ns).Run(context.Background(), httpAction(stagesetv1.HTTPAction{
		URL:         srv.URL + "/hook",
		HeadersFrom: &meta.LocalObjectReference{Name: "hook-headers"},
		Body:        `{"stage":"db"}`,
	}), time.Minute)
	g.Expect(err).NotTo(HaveOccurred())

	srv.mu.Lock()
	defer srv.mu.Unlock()
	g.Expect(srv.method).To(Equal(http.MethodPost))
	g.Expect(srv.body).To(Equal(`{"stage":"db"}`))
	g.Expect(srv.header.Get("Authorization")).To(Equal("Bearer s3cret"))
	g.Expect(srv.header.Get("X-Team")).To(Equal("platform"))
}

func TestHTTP_status(t *testing.T) {
	redirect := func(w http.ResponseWriter) { w.Header().Set("Location", "http://169.254.169.254/latest") }
	tests := []struct {
		name     string
		status   int
		extra    func(http.ResponseWriter)
		method   string
		expected []int
		wantErr  []string
	}{
		{name: "2xx by default", status: http.StatusNoContent},
		{name: "unexpected status", status: http.StatusInternalServerError, wantErr: []string{"unexpected status 500 Internal Server Error"}},
		{name: "expected status", status: http.StatusConflict, expected: []int{200, 409}},
		{name: "2xx not in expected status", status: http.StatusOK, expected: []int{201}, wantErr: []string{"unexpected status 200 OK"}},
		{name: "redirect not followed", status: http.StatusFound, extra: redirect, wantErr: []string{"unexpected status 302 Found", "redirect to http://169.254.169.254/latest not followed"}},
		{name: "redirect expected", status: http.StatusFound, extra: redirect, expected: []int{302}},
		{name: "method", status: http.StatusOK, method: http.MethodDelete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			srv := newRecorder(t, tt.status, tt.extra)
			err := loopbackRunner("default").Run(context.Background(), httpAction(stagesetv1.HTTPAction{
				URL: srv.URL, Method: tt.method, ExpectedStatus: tt.expected,
			}), time.Minute)
			if len(tt.wantErr) == 0 {
				g.Expect(err).NotTo(HaveOccurred())
			} else {
				g.Expect(err).To(HaveOccurred())
				for _, w := range tt.wantErr {
					g.Expect(err.Error()).To(ContainSubstring(w))
				}
			}
			g.Expect(srv.hits.Load()).To(BeEquivalentTo(1), "one request, the redirect not followed")
			if tt.method != "" {
				srv.mu.Lock()
				g.Expect(srv.method).To(Equal(tt.method))
				srv.mu.Unlock()
			}
		})
	}
}

func TestHTTP_hostPolicy(t *testing.T) {
	srv := newRecorder(t, http.StatusOK, nil)
	tests := []struct {
		name    string
		allowed []string
		url     string
	}{
		// Ports where nothing listens: a refusal by the dialer's check says
		// so, where a real connection attempt would say "connection refused".
		{name: "loopback", url: "http://127.0.0.1:1/hook"},
		{name: "loopback by name", url: "http://localhost:1/hook"},
		{name: "loopback IPv6", url: "http://[::1]:1/hook"},
		{name: "metadata service", url: "http://169.254.169.254/latest/meta-data"},
		{name: "private", url: "http://10.0.0.1:1/hook"},
		{name: "unspecified", url: "http://0.0.0.0:1/hook"},
		{name: "live loopback server", url: srv.URL},
		{name: "host not in the allow-list", allowed: []string{"*.example.com"}, url: srv.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := runner("default")
			r.AllowedHosts = tt.allowed
			err := r.Run(context.Background(), httpAction(stagesetv1.HTTPAction{URL: tt.url}), 10*time.Second)
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrHostRefused)).To(BeTrue(), err.Error())
			g.Expect(err.Error()).To(ContainSubstring("refused by policy"))
			g.Expect(err.Error()).NotTo(ContainSubstring("connection refused"))
		})
	}
	NewWithT(t).Expect(srv.hits.Load()).To(BeZero())
}

func TestHTTP_allowListGlob(t *testing.T) {
	g := NewWithT(t)
	srv := newRecorder(t, http.StatusOK, nil)
	r := runner("default")
	r.AllowedHosts = []string{"hooks.example.com", "127.0.0.*"}
	g.Expect(r.Run(context.Background(), httpAction(stagesetv1.HTTPAction{URL: srv.URL}), time.Minute)).To(Succeed())
	g.Expect(srv.hits.Load()).To(BeEquivalentTo(1))
}

func TestHTTP_missingHeadersSecret(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	srv := newRecorder(t, http.StatusOK, nil)
	err := loopbackRunner(ns).Run(context.Background(), httpAction(stagesetv1.HTTPAction{
		URL: srv.URL, HeadersFrom: &meta.LocalObjectReference{Name: "absent"},
	}), time.Minute)
	g.Expect(err).To(MatchError(ContainSubstring("reading the headers Secret " + ns + "/absent")))
	g.Expect(srv.hits.Load()).To(BeZero())
}

// An allowed name that resolves to the metadata service, or to the
// cluster's network without the allow-list naming it, is refused on the
// address dialled; the same names pass once named (a control that the fake
// resolver is what the client uses).
func TestHTTP_allowListChecksTheDialledAddress(t *testing.T) {
	srv := newRecorder(t, http.StatusOK, nil)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	resolver := newResolver(t, map[string][]netip.Addr{
		"metadata.test":    {netip.MustParseAddr("169.254.169.254")},
		"metadata64.test":  {netip.MustParseAddr("64:ff9b::a9fe:a9fe")},
		"metadata-v6.test": {netip.MustParseAddr("fd00:ec2::254")},
		"hooks.test":       {netip.MustParseAddr("127.0.0.1")},
	})
	tests := []struct {
		name    string
		allowed []string
		host    string
		reached bool
	}{
		{name: "metadata named exactly", allowed: []string{"metadata.test"}, host: "metadata.test"},
		{name: "metadata by a wildcard", allowed: []string{"*.test"}, host: "metadata.test"},
		{name: "metadata through NAT64", allowed: []string{"metadata64.test"}, host: "metadata64.test"},
		{name: "AWS IPv6 metadata", allowed: []string{"metadata-v6.test"}, host: "metadata-v6.test"},
		{name: "loopback by a wildcard", allowed: []string{"*.test"}, host: "hooks.test"},
		{name: "loopback named exactly", allowed: []string{"hooks.test"}, host: "hooks.test", reached: true},
		{name: "loopback by an address pattern", allowed: []string{"*.test", "127.0.0.*"}, host: "hooks.test", reached: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			before := srv.hits.Load()
			r := runner("default")
			r.AllowedHosts = tt.allowed
			r.HTTPClient = newHTTPClient(tt.allowed, resolver)
			u := fmt.Sprintf("http://%s:%d/latest/meta-data", tt.host, port)
			err := r.Run(context.Background(), httpAction(stagesetv1.HTTPAction{URL: u}), 5*time.Second)
			if tt.reached {
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(srv.hits.Load()).To(Equal(before + 1))
				return
			}
			g.Expect(err).To(HaveOccurred())
			g.Expect(errors.Is(err, ErrHostRefused)).To(BeTrue(), err.Error())
			g.Expect(err.Error()).To(ContainSubstring(tt.host))
			g.Expect(srv.hits.Load()).To(Equal(before))
		})
	}
}

// The shared client of an allow-list is built once and checks the dialled
// address too: the metadata address named in the allow-list is refused.
func TestHTTP_sharedAllowListClient(t *testing.T) {
	g := NewWithT(t)
	g.Expect(sharedClient([]string{"a.example.com"})).To(BeIdenticalTo(sharedClient([]string{"a.example.com"})))
	g.Expect(sharedClient(nil)).NotTo(BeIdenticalTo(sharedClient([]string{"a.example.com"})))

	r := runner("default")
	r.AllowedHosts = []string{"169.254.169.254"}
	err := r.Run(context.Background(), httpAction(stagesetv1.HTTPAction{URL: "http://169.254.169.254:1/latest"}), 5*time.Second)
	g.Expect(errors.Is(err, ErrHostRefused)).To(BeTrue(), fmt.Sprint(err))
}

// Errors quote neither the URL's query nor its user info, nor the body of
// the response: they reach the StageSet's status and events, readable by
// more people than the Secret the URL came from.
func TestHTTP_errorsRedactSecrets(t *testing.T) {
	const secret = "s3cret-token"
	leaky := func(w http.ResponseWriter) {
		w.Header().Set("Location", "https://elsewhere.example.com/next?sig="+secret)
	}
	body := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "invalid token "+secret+" for user admin")
	}))
	t.Cleanup(body.Close)
	redirect := newRecorder(t, http.StatusFound, leaky)
	withSecrets := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("admin", secret)
		u.RawQuery = "token=" + secret
		return u.String()
	}
	tests := []struct {
		name    string
		allowed []string
		url     string
		want    string
	}{
		{name: "refused by the dialler", url: withSecrets("http://127.0.0.1:1/hook"), want: "refused by policy"},
		{name: "refused by the allow-list", allowed: []string{"*.example.com"}, url: withSecrets("http://127.0.0.1:1/hook"), want: "refused by policy"},
		{name: "connection error", allowed: []string{"127.0.0.1"}, url: withSecrets("http://127.0.0.1:1/hook"), want: "connection refused"},
		{name: "response body", allowed: []string{"127.0.0.1"}, url: withSecrets(body.URL), want: "unexpected status 400 Bad Request"},
		{name: "redirect location", allowed: []string{"127.0.0.1"}, url: withSecrets(redirect.URL), want: "redirect to https://elsewhere.example.com/next not followed"},
		{name: "invalid url", url: "http://[::1/hook?token=" + secret, want: "invalid url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := runner("default")
			r.AllowedHosts = tt.allowed
			err := r.Run(context.Background(), httpAction(stagesetv1.HTTPAction{URL: tt.url}), 5*time.Second)
			g.Expect(err).To(MatchError(ContainSubstring(tt.want)))
			g.Expect(err.Error()).NotTo(ContainSubstring(secret))
			g.Expect(strings.Contains(err.Error(), "invalid token")).To(BeFalse(), "the body is not quoted: %s", err)
		})
	}
}
