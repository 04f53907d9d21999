package action

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// maxErrorBody bounds how much of an unexpected response is quoted in the
// error, so a chatty endpoint cannot flood conditions and events.
const maxErrorBody = 256

// http sends an HTTP action's request and checks the response status.
func (r *Runner) http(ctx context.Context, h *stagesetv1.HTTPAction) error {
	u, err := url.Parse(h.URL)
	if err != nil {
		return fmt.Errorf("invalid url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url scheme %q is not http or https", u.Scheme)
	}
	// With an allow-list the host is checked by name before anything is
	// resolved; without one the dialer checks every resolved address.
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
		return fmt.Errorf("%s %s: %w", method, redact(u), err)
	}
	defer resp.Body.Close()
	if statusExpected(resp.StatusCode, h.ExpectedStatus) {
		return nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := fmt.Sprintf("%s %s: unexpected status %s", method, redact(u), resp.Status)
	if loc := resp.Header.Get("Location"); loc != "" {
		msg += fmt.Sprintf(" (redirect to %s not followed)", loc)
	}
	if s := strings.TrimSpace(string(snippet)); s != "" {
		msg += ": " + s
	}
	return fmt.Errorf("%s", msg)
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

// httpClient returns the injected client, else one of the two shared
// clients: without an allow-list, the one that refuses non-public addresses
// when it dials.
func (r *Runner) httpClient() *http.Client {
	switch {
	case r.HTTPClient != nil:
		return r.HTTPClient
	case len(r.AllowedHosts) == 0:
		return publicOnlyClient
	}
	return allowListClient
}

// The clients of HTTP actions, built once so that actions share their
// connections instead of leaving a transport with idle connections behind
// each request.
var (
	// Checking in Control, after resolution and before connect, is what
	// defeats DNS rebinding: the address checked is the one dialled.
	publicOnlyClient = newHTTPClient(refuseNonPublic)
	allowListClient  = newHTTPClient(nil)
)

// newHTTPClient returns a client that follows no redirects, uses no proxy
// and checks each dialled address with control (none when nil).
func newHTTPClient(control func(network, address string, c syscall.RawConn) error) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, Control: control}
	return &http.Client{
		Transport: &http.Transport{
			// No proxy: a proxy would dial the target itself, out of reach of
			// the address check.
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   true,
		},
		// A redirect could lead to a host the policy refuses; the response is
		// judged as it is, so a 3xx fails unless expected.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// hostAllowed reports whether host matches one of the globs.
func hostAllowed(host string, globs []string) bool {
	host = strings.ToLower(host)
	return slices.ContainsFunc(globs, func(glob string) bool {
		ok, err := path.Match(strings.ToLower(glob), host)
		return err == nil && ok
	})
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
