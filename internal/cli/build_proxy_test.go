package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// Artifact URLs on a cluster Service go through the API server's service
// proxy; any other host is left alone.
func TestServiceProxyURL(t *testing.T) {
	cfg := &rest.Config{Host: "https://api.example.com:6443"}
	proxy := "https://api.example.com:6443/api/v1/namespaces/flux-system/services/"
	for url, want := range map[string]string{
		// source-controller's default advertised address ends with a dot.
		"http://source-controller.flux-system.svc.cluster.local./gitrepository/apps/repo/abc.tar.gz": proxy + "http:source-controller:80/proxy/gitrepository/apps/repo/abc.tar.gz",
		"http://source-controller.flux-system.svc.cluster.local/a.tar.gz":                            proxy + "http:source-controller:80/proxy/a.tar.gz",
		"http://source-controller.flux-system.svc:9090/a.tar.gz?x=1":                                 proxy + "http:source-controller:9090/proxy/a.tar.gz?x=1",
		"https://source-controller.flux-system.svc/a%20b.tar.gz":                                     proxy + "https:source-controller:443/proxy/a%20b.tar.gz",
		"http://source-controller.flux.svc/a.tar.gz":                                                 "https://api.example.com:6443/api/v1/namespaces/flux/services/http:source-controller:80/proxy/a.tar.gz",
		// Any other Service is fetched directly, without credentials.
		"https://storage.flux-system.svc/a.tar.gz":                      "",
		"http://kube-dns.kube-system.svc:53/a.tar.gz":                   "",
		"http://SOURCE-CONTROLLER.flux-system.svc/a.gz":                 "",
		"http://127.0.0.1:8080/a.tar.gz":                                "",
		"https://artifacts.example.com/a.tar.gz":                        "",
		"http://source-controller.flux-system.svc.example.com/a.tar.gz": "",
		"http://flux-system.svc/a.tar.gz":                               "",
		"ftp://source-controller.flux-system.svc/a.tar.gz":              "",
	} {
		got, err := serviceProxyURL(cfg, url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", url, got, want)
		}
	}
	// A path that would climb out of the proxy prefix is refused.
	for _, url := range []string{
		"http://source-controller.flux-system.svc/../../../api/v1/secrets",
		"http://source-controller.flux-system.svc/a/%2e%2e/%2E%2E/x",
		"http://source-controller.flux-system.svc/a%2f..%2fb",
		"http://source-controller.flux-system.svc/./a",
	} {
		if got, err := serviceProxyURL(cfg, url); err == nil {
			t.Errorf("%s: proxied as %q", url, got)
		}
	}
}

// A redirect answered through the proxy is not followed: the transport
// adds the user's credentials to every request, wherever it goes.
func TestBuildDoesNotFollowRedirectsWithCredentials(t *testing.T) {
	g := NewWithT(t)
	var mu sync.Mutex
	var stolen []string
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stolen = append(stolen, r.Header.Get("Authorization"))
		mu.Unlock()
	}))
	t.Cleanup(attacker.Close)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, attacker.URL+"/x.tar.gz", http.StatusFound)
	}))
	t.Cleanup(api.Close)

	a := &artifactFetcher{config: &rest.Config{Host: api.URL, BearerToken: "user-token"}}
	t.Cleanup(a.close)
	_, err := a.fetch(context.Background(), meta.Artifact{
		URL: "http://source-controller.flux-system.svc/gitrepository/apps/repo/rev.tar.gz", Digest: testenv.Digest([]byte("x")),
	})
	g.Expect(err).To(MatchError(ContainSubstring("302")))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(stolen).To(BeEmpty(), "the redirect target was called")
}

// An in-cluster artifact is downloaded through the API server with the
// user's credentials and checked against its digest; a direct download
// never carries them.
func TestBuildFetchesThroughTheServiceProxy(t *testing.T) {
	g := NewWithT(t)
	tarball, err := testenv.Tarball(map[string]testenv.File{"app/cm.yaml": {Body: "kind: ConfigMap\n"}})
	g.Expect(err).NotTo(HaveOccurred())

	var mu sync.Mutex
	var apiRequests []string
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		apiRequests = append(apiRequests, r.Header.Get("Authorization")+" "+r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/api/v1/namespaces/flux-system/services/http:source-controller:80/proxy/gitrepository/apps/repo/rev.tar.gz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(tarball)
	}))
	t.Cleanup(api.Close)
	var directAuth []string
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		directAuth = append(directAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write(tarball)
	}))
	t.Cleanup(direct.Close)

	a := &artifactFetcher{config: &rest.Config{Host: api.URL, BearerToken: "user-token"}}
	t.Cleanup(a.close)
	ctx := context.Background()
	inCluster := "http://source-controller.flux-system.svc.cluster.local./gitrepository/apps/repo/rev.tar.gz"

	dir, err := a.fetch(ctx, meta.Artifact{URL: inCluster, Digest: testenv.Digest(tarball)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(os.ReadFile(filepath.Join(dir, "app", "cm.yaml"))).To(BeEquivalentTo("kind: ConfigMap\n"))
	g.Expect(apiRequests).To(ConsistOf("Bearer user-token /api/v1/namespaces/flux-system/services/http:source-controller:80/proxy/gitrepository/apps/repo/rev.tar.gz"))

	_, err = a.fetch(ctx, meta.Artifact{URL: inCluster, Digest: testenv.Digest([]byte("something else"))})
	g.Expect(err).To(MatchError(ContainSubstring("digest mismatch")))

	_, err = a.fetch(ctx, meta.Artifact{URL: direct.URL + "/rev.tar.gz", Digest: testenv.Digest(tarball)})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(directAuth).To(Equal([]string{""}), "a direct download carries no credentials")
	g.Expect(apiRequests).To(HaveLen(2), "a direct download does not go through the API server")
}
