package action

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
		{name: "unexpected status", status: http.StatusInternalServerError, wantErr: []string{"unexpected status 500 Internal Server Error", "served"}},
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
