package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/fluxcd/pkg/apis/meta"
)

// Cache fetches each distinct artifact once per reconcile run. Stages that
// share a source (the common case: one repository, one path per stage)
// would otherwise download and extract the same tarball once per stage.
//
// The controller creates one Cache per run and closes it at the end of the
// run, which removes every extracted artifact: nothing is kept between runs,
// so a run always builds from the artifact the source serves now. A Cache is
// safe for concurrent use.
type Cache struct {
	fetcher *Fetcher
	root    string

	mu      sync.Mutex
	closed  bool
	entries map[cacheKey]*cacheEntry
}

// cacheKey identifies an artifact: the same digest served at two addresses
// is fetched twice, as either address may be the one that fails.
type cacheKey struct {
	digest, url string
}

// cacheEntry is one fetch; done is closed once dir or err is set.
type cacheEntry struct {
	done chan struct{}
	dir  string
	err  error
}

// NewCache creates a Cache that fetches with f (the zero Fetcher when nil)
// into a new temporary directory.
func NewCache(f *Fetcher) (*Cache, error) {
	if f == nil {
		f = &Fetcher{}
	}
	root, err := os.MkdirTemp("", "stageset-artifacts-")
	if err != nil {
		return nil, fmt.Errorf("creating the artifact cache directory: %w", err)
	}
	return &Cache{fetcher: f, root: root, entries: map[cacheKey]*cacheEntry{}}, nil
}

// Root returns the directory that holds the extracted artifacts.
func (c *Cache) Root() string {
	return c.root
}

// Get returns the directory the artifact is extracted into, fetching it on
// the first call for its digest and URL. Concurrent calls for the same
// artifact wait for the one fetch. A failed fetch is not remembered: its
// directory is removed and the next Get tries again. Fetch failures are
// *ArtifactError.
func (c *Cache) Get(ctx context.Context, artifact meta.Artifact) (string, error) {
	key := cacheKey{digest: artifact.Digest, url: artifact.URL}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return "", errors.New("the artifact cache is closed")
	}
	if e, ok := c.entries[key]; ok {
		c.mu.Unlock()
		select {
		case <-e.done:
			return e.dir, e.err
		case <-ctx.Done():
			return "", &ArtifactError{URL: artifact.URL, Err: ctx.Err()}
		}
	}
	e := &cacheEntry{done: make(chan struct{})}
	c.entries[key] = e
	c.mu.Unlock()

	dir := filepath.Join(c.root, key.dirName())
	if err := c.fetcher.Fetch(ctx, artifact, dir); err != nil {
		e.err = err
		_ = os.RemoveAll(dir)
		c.mu.Lock()
		delete(c.entries, key)
		c.mu.Unlock()
	} else {
		e.dir = dir
	}
	close(e.done)
	return e.dir, e.err
}

// Close removes every extracted artifact. Later calls to Get fail; Close
// itself may be called again.
func (c *Cache) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if err := os.RemoveAll(c.root); err != nil {
		return fmt.Errorf("removing the artifact cache: %w", err)
	}
	return nil
}

// dirName derives a directory name from the key, stable for debugging and
// safe whatever the digest and URL contain.
func (k cacheKey) dirName() string {
	sum := sha256.Sum256([]byte(k.digest + "\x00" + k.url))
	return hex.EncodeToString(sum[:12])
}
