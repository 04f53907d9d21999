package bench

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
)

// requestCounter counts the HTTP requests a client sends to the API server,
// split by what they cost the server: reads, dry-run writes and real writes.
// It is installed with rest.Config.Wrap, below client-go's retries, so a
// retried request counts each time it goes on the wire.
type requestCounter struct {
	gets, dryRuns, writes, other atomic.Int64
}

// requestCounts is a snapshot of a requestCounter.
type requestCounts struct {
	Gets, DryRuns, Writes, Other int64
}

// Total is the number of requests of every sort.
func (c requestCounts) Total() int64 { return c.Gets + c.DryRuns + c.Writes + c.Other }

// Sub returns the requests counted since before was taken.
func (c requestCounts) Sub(before requestCounts) requestCounts {
	return requestCounts{
		Gets:    c.Gets - before.Gets,
		DryRuns: c.DryRuns - before.DryRuns,
		Writes:  c.Writes - before.Writes,
		Other:   c.Other - before.Other,
	}
}

// Snapshot returns the counts so far.
func (c *requestCounter) Snapshot() requestCounts {
	return requestCounts{Gets: c.gets.Load(), DryRuns: c.dryRuns.Load(), Writes: c.writes.Load(), Other: c.other.Load()}
}

// Wrap has the signature of rest.Config.WrapTransport.
func (c *requestCounter) Wrap(next http.RoundTripper) http.RoundTripper {
	return countingTransport{next: next, counter: c}
}

type countingTransport struct {
	next    http.RoundTripper
	counter *requestCounter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.Method == http.MethodGet:
		t.counter.gets.Add(1)
	case req.URL.Query().Has("dryRun"):
		t.counter.dryRuns.Add(1)
	case req.Method == http.MethodPatch || req.Method == http.MethodPut ||
		req.Method == http.MethodPost || req.Method == http.MethodDelete:
		t.counter.writes.Add(1)
	default:
		t.counter.other.Add(1)
	}
	return t.next.RoundTrip(req)
}

// The counter must see every request of a client built from the wrapped
// rest.Config and sort it the way the benchmarks report it.
func TestRequestCounter_CountsEachRequestBySort(t *testing.T) {
	g := NewWithT(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()

	counter := &requestCounter{}
	cfg := &rest.Config{Host: srv.URL}
	cfg.Wrap(counter.Wrap)
	httpClient, err := rest.HTTPClientFor(cfg)
	g.Expect(err).NotTo(HaveOccurred())

	send := func(method, path string) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader("{}"))
		g.Expect(err).NotTo(HaveOccurred())
		resp, err := httpClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(resp.Body.Close()).To(Succeed())
	}
	send(http.MethodGet, "/api/v1/namespaces/a/configmaps/x")
	send(http.MethodGet, "/api/v1/namespaces/a/configmaps/y")
	before := counter.Snapshot()
	send(http.MethodPatch, "/api/v1/namespaces/a/configmaps/x?dryRun=All&fieldManager=m")
	send(http.MethodPatch, "/api/v1/namespaces/a/configmaps/x?fieldManager=m")
	send(http.MethodDelete, "/api/v1/namespaces/a/configmaps/x")
	send(http.MethodHead, "/healthz")

	g.Expect(counter.Snapshot()).To(Equal(requestCounts{Gets: 2, DryRuns: 1, Writes: 2, Other: 1}))
	g.Expect(counter.Snapshot().Sub(before)).To(Equal(requestCounts{DryRuns: 1, Writes: 2, Other: 1}))
	g.Expect(counter.Snapshot().Total()).To(BeEquivalentTo(6))
}
