package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// countingProxy is a reverse proxy on loopback in front of the API server.
// A client given its plain-HTTP address talks to the API server with the
// credentials of cfg, and every request it sends is counted by verb and
// resource: counting at the proxy sees the controller's requests exactly,
// whichever of its clients (cache, per-run clients, discovery) sends them.
type countingProxy struct {
	server *http.Server
	addr   string

	mu     sync.Mutex
	counts map[string]int64
	// firstWatch is when the first watch of StageSets came in: the
	// controller's caches are syncing, it is about to start working.
	firstWatch time.Time
}

// startProxy serves the proxy on a random loopback port.
func startProxy(cfg *rest.Config) (*countingProxy, error) {
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the proxy transport: %w", err)
	}
	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	target, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("parsing the API server address: %w", err)
	}
	p := &countingProxy{counts: map[string]int64{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
		},
		Transport: transport,
		// Watch events go through at once: progress is tracked by watches.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// Watches end with a canceled context when a controller stops.
			if !errors.Is(err, context.Canceled) {
				log.Printf("proxy: %s %s: %v", r.Method, r.URL.Path, err)
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = "http://" + ln.Addr().String()
	p.server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := classify(r)
		p.mu.Lock()
		p.counts[key]++
		if key == "watch stagesets" && p.firstWatch.IsZero() {
			p.firstWatch = time.Now()
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = p.server.Serve(ln) }()
	return p, nil
}

// Config returns a client configuration that reaches the API server
// through the proxy, without client-side throttling.
func (p *countingProxy) Config() *rest.Config {
	return &rest.Config{Host: p.addr, QPS: -1, Burst: -1}
}

// Close stops the proxy and ends the requests in flight (watches).
func (p *countingProxy) Close() {
	_ = p.server.Shutdown(canceled())
	_ = p.server.Close()
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// FirstWatch returns when the first watch of StageSets came in, zero
// before.
func (p *countingProxy) FirstWatch() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.firstWatch
}

// Snapshot returns the counts so far.
func (p *countingProxy) Snapshot() requestCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.counts)
}

// requestCounts maps "<verb> <resource>" (e.g. "dry-run apply configmaps",
// "patch stagesets/status") to a number of requests.
type requestCounts map[string]int64

// Sub returns the requests counted since before.
func (c requestCounts) Sub(before requestCounts) requestCounts {
	out := requestCounts{}
	for k, v := range c {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// Total is the number of requests of every sort.
func (c requestCounts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// classify names a request "<verb> <resource>", with the verb as the API
// server's audit log names it (get, list, watch, create, update, patch,
// apply, delete, deletecollection), prefixed by "dry-run " for dry-runs.
// Requests outside resource paths (discovery, /version, /livez) are
// "discovery".
func classify(r *http.Request) string {
	resource, named, ok := resourceOf(r.URL.Path)
	if !ok {
		return "discovery"
	}
	q := r.URL.Query()
	var verb string
	switch r.Method {
	case http.MethodGet:
		switch {
		case q.Get("watch") == "true" || q.Get("watch") == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/apply-patch") {
			verb = "apply"
		}
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(r.Method)
	}
	if q.Has("dryRun") {
		verb = "dry-run " + verb
	}
	return verb + " " + resource
}

// resourceOf parses /api/v1/... and /apis/<group>/<version>/... paths into
// the resource (with its subresource, e.g. "stagesets/status") and whether
// the request names one object; ok is false for any other path.
func resourceOf(path string) (resource string, named, ok bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 3 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 4 && segs[0] == "apis":
		segs = segs[3:]
	default:
		return "", false, false
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	switch len(segs) {
	case 1:
		return segs[0], false, true
	case 2:
		return segs[0], true, true
	default:
		return segs[0] + "/" + strings.Join(segs[2:], "/"), true, true
	}
}
