package source

import (
	"context"
	// The digest algorithms go-digest verifies register themselves through
	// these imports.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/go-logr/logr"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/opencontainers/go-digest"
)

// errNotFound is wrapped by the error of a download answered with 404: the
// source has garbage-collected the artifact, or the URL is wrong.
var errNotFound = errors.New("artifact not found (HTTP 404)")

// download writes the body at url into file, retrying connection errors and
// 5xx answers, and fails once more than maxSize bytes arrive (maxSize < 0:
// no cap).
func (f *Fetcher) download(ctx context.Context, url string, maxSize int, file *os.File) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("creating the request: %w", err)
	}
	resp, err := f.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("downloading: %w", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return errNotFound
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("downloading: unexpected status %s", resp.Status)
	}

	// The Content-Length header is not trusted: the cap counts the bytes
	// that actually arrive, reading one past it to detect an excess.
	body := io.Reader(resp.Body)
	if maxSize > 0 {
		body = io.LimitReader(resp.Body, int64(maxSize)+1)
	}
	n, err := io.Copy(file, body)
	if err != nil {
		return fmt.Errorf("downloading: %w", err)
	}
	if maxSize > 0 && n > int64(maxSize) {
		return fmt.Errorf("the download exceeds the max download size of %d bytes", maxSize)
	}
	return nil
}

// httpClient returns the Fetcher's client, built on first use: one pooled
// transport for every download, instead of a transport (and its idle
// connections) left behind by each one.
func (f *Fetcher) httpClient() *retryablehttp.Client {
	f.clientOnce.Do(func() {
		client := retryablehttp.NewClient()
		client.RetryMax = max(orDefault(f.Retries, DefaultRetries), 0)
		client.Logger = nil
		if f.Transport != nil {
			// A transport that adds credentials to every request (the
			// API server's, for stagesetctl) must not follow a redirect:
			// an artifact server could send those credentials anywhere.
			// The redirect is returned as the answer, and fails the
			// download as any status other than 200 does.
			client.HTTPClient = &http.Client{
				Transport:     f.Transport,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
		}
		if f.Logger.GetSink() != nil {
			client.Logger = leveledLogger{f.Logger}
		}
		f.client = client
	})
	return f.client
}

// parseDigest parses the artifact's digest, which source-controller writes
// as <algorithm>:<hex>. sha256 (source-controller's default), sha384 and
// sha512 are supported; blake3 needs the go-digest fork and is refused as
// unsupported.
func parseDigest(s string) (digest.Digest, error) {
	if s == "" {
		return "", errors.New("the artifact has no digest to verify it against")
	}
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid artifact digest %q: %w", s, err)
	}
	return d, nil
}

// verify checks the downloaded file against the expected digest and names
// both digests when they differ.
func verify(file *os.File, want digest.Digest) error {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding the download: %w", err)
	}
	got, err := want.Algorithm().FromReader(file)
	if err != nil {
		return fmt.Errorf("computing the digest of the download: %w", err)
	}
	if got != want {
		return fmt.Errorf("digest mismatch: the source reports %s but the download is %s", want, got)
	}
	return nil
}

// leveledLogger passes retryablehttp's messages to a logr.Logger: errors as
// errors, retries at V(1), request traces at V(2).
type leveledLogger struct {
	log logr.Logger
}

func (l leveledLogger) Error(msg string, keysAndValues ...any) {
	l.log.Error(nil, msg, keysAndValues...)
}

func (l leveledLogger) Warn(msg string, keysAndValues ...any) {
	l.log.V(1).Info(msg, keysAndValues...)
}

func (l leveledLogger) Info(msg string, keysAndValues ...any) {
	l.log.V(2).Info(msg, keysAndValues...)
}

func (l leveledLogger) Debug(msg string, keysAndValues ...any) {
	l.log.V(2).Info(msg, keysAndValues...)
}
