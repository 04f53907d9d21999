package source

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// serveArtifact publishes a small tarball and returns its artifact, served
// by handler instead of the artifact server (handler gets the tarball);
// configure, when set, adjusts the server before it starts.
func serveArtifact(t *testing.T, handler func(data []byte) http.Handler, configure func(*http.Server)) *meta.Artifact {
	t.Helper()
	data, err := testenv.Tarball(map[string]testenv.File{"a.yaml": {Body: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewUnstartedServer(handler(data))
	if configure != nil {
		configure(server.Config)
	}
	server.Start()
	t.Cleanup(server.Close)
	artifact := env.Artifacts.PublishRaw(testenv.RandomName("download")+".tar.gz", "main@sha1:1", data)
	artifact.URL = server.URL + "/artifact.tar.gz"
	return artifact
}

// A fetch is bounded as a whole: a storage that never finishes the body, or
// keeps answering 503 through every retry, fails once the Fetcher's timeout
// is spent, with an error that says so, long before the caller's deadline.
func TestFetchDeadline(t *testing.T) {
	stalls := func(data []byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(data)))
			_, _ = w.Write(data[:len(data)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		})
	}
	unavailable := func([]byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "storage warming up", http.StatusServiceUnavailable)
		})
	}
	for name, handler := range map[string]func([]byte) http.Handler{"body never ends": stalls, "503 through the retries": unavailable} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			artifact := serveArtifact(t, handler, nil)
			// The caller allows far longer than the fetch's own deadline,
			// and far less than the default retries' back-off.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			start := time.Now()
			err := (&Fetcher{Timeout: 2 * time.Second}).Fetch(ctx, *artifact, t.TempDir())
			expectArtifactError(g, err, artifact, "the fetch did not finish within 2s")
			g.Expect(err).To(MatchError(context.DeadlineExceeded))
			g.Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second))
		})
	}
}

// Retries answers Retries times after the first request, no more.
func TestFetchRetriesAsConfigured(t *testing.T) {
	g := NewWithT(t)
	var requests atomic.Int64
	artifact := serveArtifact(t, func([]byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			requests.Add(1)
			http.Error(w, "storage warming up", http.StatusServiceUnavailable)
		})
	}, nil)

	err := (&Fetcher{Retries: 2}).Fetch(context.Background(), *artifact, t.TempDir())
	expectArtifactError(g, err, artifact, "giving up after 3 attempt(s)")
	g.Expect(requests.Load()).To(BeEquivalentTo(3))
	g.Expect(DefaultRetries).To(Equal(9), "the default of --http-retry, as in kustomize-controller")
}

// One Fetcher keeps one client: later fetches reuse its connections instead
// of opening new ones (and leaving idle ones behind).
func TestFetcherReusesItsClient(t *testing.T) {
	g := NewWithT(t)
	var conns atomic.Int64
	artifact := serveArtifact(t, func(data []byte) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) })
	}, func(s *http.Server) {
		s.ConnState = func(_ net.Conn, state http.ConnState) {
			if state == http.StateNew {
				conns.Add(1)
			}
		}
	})

	f := &Fetcher{}
	for range 3 {
		g.Expect(f.Fetch(context.Background(), *artifact, t.TempDir())).To(Succeed())
	}
	g.Expect(conns.Load()).To(BeEquivalentTo(1), "one connection for three fetches")
	g.Expect(f.httpClient()).To(BeIdenticalTo(f.httpClient()))
}
