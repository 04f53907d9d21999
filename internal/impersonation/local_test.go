package impersonation

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/scheme"
)

// fakeAPIServer answers discovery of the core group and GETs of
// ConfigMaps, and records each request's path and impersonated user.
type fakeAPIServer struct {
	mu       sync.Mutex
	requests []string
}

func (s *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests = append(s.requests, r.Header.Get("Impersonate-User")+" "+r.URL.Path)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/api":
		_, _ = w.Write([]byte(`{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}`))
	case r.URL.Path == "/apis":
		_, _ = w.Write([]byte(`{"kind":"APIGroupList","apiVersion":"v1","groups":[]}`))
	case r.URL.Path == "/api/v1":
		_, _ = w.Write([]byte(`{"kind":"APIResourceList","groupVersion":"v1","resources":[` +
			`{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["get"]}]}`))
	case strings.HasPrefix(r.URL.Path, "/api/v1/namespaces/apps/configmaps/"):
		_, _ = w.Write([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm","namespace":"apps"}}`))
	default:
		http.NotFound(w, r)
	}
}

// discovery counts the discovery requests made as user.
func (s *fakeAPIServer) discovery(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		u, path, _ := strings.Cut(r, " ")
		if u == user && (path == "/api" || path == "/apis" || path == "/api/v1") {
			n++
		}
	}
	return n
}

// A run reuses the client of its identity: no new discovery per run. Each
// identity has its own client, and a client is rebuilt once it expires.
func TestRunsShareTheClientOfTheirIdentity(t *testing.T) {
	api := &fakeAPIServer{}
	server := httptest.NewServer(api)
	t.Cleanup(server.Close)
	clock := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f := &Factory{Base: &rest.Config{Host: server.URL}, Scheme: scheme.New(), now: func() time.Time { return clock }}
	ctx := context.Background()

	stageSet := func(sa string) *stagesetv1.StageSet {
		return &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "shop"},
			Spec: stagesetv1.StageSetSpec{ServiceAccountName: sa}}
	}
	run := func(sa string) client.Client {
		t.Helper()
		c, err := f.ClientFor(ctx, stageSet(sa))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "cm"}, &corev1.ConfigMap{}); err != nil {
			t.Fatal(err)
		}
		return c
	}

	first := run("")
	own := api.discovery("")
	if own == 0 {
		t.Fatal("the first run discovered nothing")
	}
	for range 5 {
		if run("") != first {
			t.Fatal("a later run of the same identity got another client")
		}
	}
	if got := api.discovery(""); got != own {
		t.Errorf("later runs discovered again: %d discovery requests, want %d", got, own)
	}

	// Another identity: its own client, impersonating it.
	tenant := run("deployer")
	if tenant == first {
		t.Fatal("two identities share a client")
	}
	if api.discovery("system:serviceaccount:apps:deployer") == 0 {
		t.Error("the impersonated client made no request as the service account")
	}

	// Past its lifetime a client is built anew.
	clock = clock.Add(localTTL)
	if run("") == first {
		t.Error("an expired client served again")
	}
	if got := api.discovery(""); got <= own {
		t.Errorf("the rebuilt client did not discover: %d discovery requests", got)
	}
}
