package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/tar"
	"github.com/go-logr/logr"
	"github.com/hashicorp/go-retryablehttp"
)

// Defaults of the zero Fetcher.
const (
	// DefaultRetries is how many times a download is retried after a
	// connection error or a 5xx answer: the default of --http-retry, as in
	// kustomize-controller.
	DefaultRetries = 9
	// DefaultTimeout bounds one fetch, retries and extraction included. The
	// back-off of DefaultRetries waits about two and a half minutes in all,
	// which leaves as much again for the transfers.
	DefaultTimeout = 5 * time.Minute
	// DefaultMaxDownloadSize caps the compressed artifact: 50 MiB.
	DefaultMaxDownloadSize = 50 << 20
	// DefaultMaxUntarSize caps the sum of the extracted files: 100 MiB.
	DefaultMaxUntarSize = 100 << 20
)

// ArtifactError says that an artifact could not be used: the download
// failed, its digest did not match, it exceeded a size cap, or its
// extraction failed or was refused (an entry or a link escaping the
// directory). The controller reports Ready=False reason ArtifactFailed.
type ArtifactError struct {
	// URL is the artifact's address.
	URL string
	// Err is what went wrong.
	Err error
}

// Error returns e.g. `failed to fetch artifact <url>: <what went wrong>`.
func (e *ArtifactError) Error() string {
	return fmt.Sprintf("failed to fetch artifact %s: %v", e.URL, e.Err)
}

// Unwrap returns the underlying error.
func (e *ArtifactError) Unwrap() error {
	return e.Err
}

// Fetcher downloads artifacts from source-controller's storage. The zero
// value is ready to use; each zero field takes its default. Its HTTP client
// is built on first use and shared by every later fetch, so connections to
// the storage are reused: a Fetcher must not be copied once used, nor its
// Retries changed.
//
// It does what fluxcd/pkg/http/fetch's ArchiveFetcher does, with the same
// libraries (go-retryablehttp, go-digest, fluxcd/pkg/tar), for two reasons:
// ArchiveFetcher v0.25.0 only builds in a module that replaces go-digest with
// its BLAKE3-capable fork, which this module does not; and it drops every
// symlink silently, where a link out of the artifact must fail with an error
// that says so.
type Fetcher struct {
	// Retries is how many times a download is retried after a connection
	// error or a 5xx answer, with retryablehttp's back-off (1 to 30
	// seconds). Zero means DefaultRetries (9); a negative value disables
	// retries.
	Retries int
	// Timeout bounds one Fetch: the download with its retries and back-off,
	// and the extraction. Zero means DefaultTimeout (5 minutes); a negative
	// value leaves only the caller's context.
	Timeout time.Duration
	// MaxDownloadSize caps the compressed artifact, in bytes. Zero means
	// DefaultMaxDownloadSize (50 MiB); a negative value disables the cap.
	MaxDownloadSize int
	// MaxUntarSize caps the sum of the sizes of the extracted files, in
	// bytes. Zero means DefaultMaxUntarSize (100 MiB); a negative value
	// disables the cap.
	MaxUntarSize int
	// Logger receives the HTTP client's errors and notes about skipped
	// links. Optional.
	Logger logr.Logger
	// Transport carries the downloads when set; nil means a pooled
	// transport of its own. stagesetctl sets one that goes through the API
	// server's service proxy with the user's credentials.
	Transport http.RoundTripper

	clientOnce sync.Once
	client     *retryablehttp.Client
}

// Fetch downloads artifact.URL, verifies the download against
// artifact.Digest and extracts it into dir, which is created if missing.
// Every failure is an *ArtifactError. On failure dir may hold part of the
// archive; the caller discards it.
//
// The download is capped at MaxDownloadSize and kept in a temporary file, so
// nothing is extracted before the digest is verified. Extraction is
// fluxcd/pkg/tar's Untar: the archive must be gzipped, entries may not leave
// dir, device and other special entries are refused, and the extracted size
// is capped at MaxUntarSize. Links are never created: a symbolic or hard
// link whose target lies outside the artifact fails the fetch with an error
// that names it, and a link that stays inside is dropped, as
// kustomize-controller drops symlinks.
func (f *Fetcher) Fetch(ctx context.Context, artifact meta.Artifact, dir string) error {
	timeout := f.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	parent := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	fail := func(err error) error {
		// Say which deadline expired: the caller's, or the fetch's own.
		if errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			err = fmt.Errorf("the fetch did not finish within %s: %w", timeout, err)
		}
		return &ArtifactError{URL: artifact.URL, Err: err}
	}

	if artifact.URL == "" {
		return fail(errors.New("the artifact has no URL"))
	}
	// The size the source reports is checked first, which spares
	// downloading what would be refused anyway; the download still counts
	// the bytes it receives, since the report may be wrong.
	maxDownload := orDefault(f.MaxDownloadSize, DefaultMaxDownloadSize)
	if maxDownload > 0 && artifact.Size != nil && *artifact.Size > int64(maxDownload) {
		return fail(fmt.Errorf("the artifact size of %d bytes exceeds the max download size of %d bytes", *artifact.Size, maxDownload))
	}
	want, err := parseDigest(artifact.Digest)
	if err != nil {
		return fail(err)
	}

	file, err := os.CreateTemp("", "stageset-artifact-*.tar.gz")
	if err != nil {
		return fail(fmt.Errorf("creating a temporary file: %w", err))
	}
	defer func() {
		_ = file.Close()
		_ = os.Remove(file.Name())
	}()

	if err := f.download(ctx, artifact.URL, maxDownload, file); err != nil {
		return fail(err)
	}
	if err := verify(file, want); err != nil {
		return fail(err)
	}
	if err := f.extract(ctx, file, dir); err != nil {
		return fail(err)
	}
	return nil
}

// extract untars the verified download into dir.
func (f *Fetcher) extract(ctx context.Context, file *os.File, dir string) error {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewinding the download: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("creating the extraction directory: %w", err)
	}
	links := &linkGuard{log: f.Logger}
	err := tar.Untar(&ctxReader{ctx: ctx, r: file}, dir,
		tar.WithMaxUntarSize(orDefault(f.MaxUntarSize, DefaultMaxUntarSize)),
		tar.WithFilter(links.skip),
	)
	if err != nil {
		return fmt.Errorf("extracting the artifact: %w", err)
	}
	if links.err != nil {
		return fmt.Errorf("extracting the artifact: %w", links.err)
	}
	return nil
}

// orDefault returns v, or def when v is zero.
func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// ctxReader stops a long extraction when the run is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
