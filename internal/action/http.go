package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// maxDrain bounds how much of an unexpected response is read (and thrown
// away) so that its connection can be reused; the body is never quoted, as
// it may echo the request's secrets or come from a hostile endpoint.
const maxDrain = 4 << 10

// http sends an HTTP action's request and checks the response status.
func (r *Runner) http(ctx context.Context, h *stagesetv1.HTTPAction) error {
	u, err := url.Parse(h.URL)
	if err != nil {
		// The parse error quotes the whole URL, query included.
		return fmt.Errorf("invalid url: %w", unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url scheme %q is not http or https", u.Scheme)
	}
	// With an allow-list the host is checked by name before anything is
	// resolved; in both modes the dialer checks every resolved address.
	if len(r.AllowedHosts) > 0 && !hostAllowed(u.Hostname(), r.AllowedHosts) {
		return fmt.Errorf("host %q: %w: it matches none of the allowed action hosts", u.Hostname(), ErrHostRefused)
	}

	method := h.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), strings.NewReader(h.Body))
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	if h.HeadersFrom != nil {
		if err := r.setHeaders(ctx, req, h.HeadersFrom.Name); err != nil {
			return err
		}
	}

	resp, err := r.httpClient().Do(req)
	if err != nil {
		// The client's *url.Error quotes the URL with its query: keep only
		// what went wrong.
		return fmt.Errorf("%s %s: %w", method, redact(u), unwrapURLError(err))
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
		_ = resp.Body.Close()
	}()
	if statusExpected(resp.StatusCode, h.ExpectedStatus) {
		return nil
	}
	msg := fmt.Sprintf("%s %s: unexpected status %s", method, redact(u), statusLine(resp))
	if loc := resp.Header.Get("Location"); loc != "" {
		msg += fmt.Sprintf(" (redirect to %s not followed)", redactLocation(loc))
	}
	return errors.New(msg)
}

// setHeaders sends every data entry of the Secret as a request header.
func (r *Runner) setHeaders(ctx context.Context, req *http.Request, name string) error {
	var secret corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, &secret); err != nil {
		return fmt.Errorf("reading the headers Secret %s/%s: %w", r.Namespace, name, err)
	}
	for key, value := range secret.Data {
		req.Header.Set(key, string(value))
	}
	return nil
}

// httpClient returns the injected client, else the shared client of the
// Runner's allow-list.
func (r *Runner) httpClient() *http.Client {
	if r.HTTPClient != nil {
		return r.HTTPClient
	}
	return sharedClient(r.AllowedHosts)
}

// clients holds one client per allow-list (in practice one: the flag's), so
// that actions share their connections instead of leaving a transport with
// idle connections behind each request.
var clients sync.Map

// sharedClient returns the client that enforces the policy of globs (public
// addresses only when empty).
func sharedClient(globs []string) *http.Client {
	key := strings.Join(globs, "\n")
	if c, ok := clients.Load(key); ok {
		return c.(*http.Client)
	}
	c, _ := clients.LoadOrStore(key, newHTTPClient(slices.Clone(globs), nil))
	return c.(*http.Client)
}

// newHTTPClient returns a client that follows no redirects, uses no proxy
// and checks each dialled address against the policy of globs. resolver
// resolves host names (the system's when nil; tests inject one).
func newHTTPClient(globs []string, resolver *net.Resolver) *http.Client {
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		// Checking in Control, after resolution and before connect, is
		// what defeats DNS rebinding: the address checked is the one
		// dialled. The host is passed along for the allow-list, which may
		// name it.
		dialer := &net.Dialer{Timeout: 30 * time.Second, Resolver: resolver, Control: dialControl(host, globs)}
		return dialer.DialContext(ctx, network, address)
	}
	return &http.Client{
		Transport: &http.Transport{
			// No proxy: a proxy would dial the target itself, out of reach of
			// the address check.
			Proxy:               nil,
			DialContext:         dial,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
			IdleConnTimeout:     90 * time.Second,
		},
		// A redirect could lead to a host the policy refuses; the response is
		// judged as it is, so a 3xx fails unless expected.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// statusExpected reports whether code counts as success: one of expected,
// else any 2xx.
func statusExpected(code int, expected []int) bool {
	if len(expected) > 0 {
		return slices.Contains(expected, code)
	}
	return code >= 200 && code < 300
}

// redact drops credentials and the query from a URL shown in messages, as
// they may carry secrets.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.Fragment = ""
	return c.String()
}

// redactLocation redacts a redirect's Location, which may be relative or
// not a URL at all.
func redactLocation(loc string) string {
	u, err := url.Parse(loc)
	if err != nil {
		return "(unparsable)"
	}
	return redact(u)
}

// statusLine returns the response's status line, bounded: it is the only
// part of a response quoted, and the endpoint chooses its reason phrase.
func statusLine(resp *http.Response) string {
	const maxStatus = 64
	status := strings.ToValidUTF8(resp.Status, "?")
	if len(status) > maxStatus {
		return strings.ToValidUTF8(status[:maxStatus], "") + "..."
	}
	return status
}

// unwrapURLError returns what went wrong without the *url.Error around it,
// which quotes the URL with its query and user info.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
