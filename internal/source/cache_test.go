package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/testenv"
)

func newCache(t *testing.T) *Cache {
	t.Helper()
	c, err := NewCache(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readFile(g *WithT, path string) string {
	g.THelper()
	data, err := os.ReadFile(path)
	g.Expect(err).NotTo(HaveOccurred())
	return string(data)
}

func TestCacheFetchesOnce(t *testing.T) {
	g := NewWithT(t)
	c := newCache(t)
	artifact := publish(t, map[string]testenv.File{"a.yaml": {Body: "a"}})

	first, err := c.Get(context.Background(), *artifact)
	g.Expect(err).NotTo(HaveOccurred())
	second, err := c.Get(context.Background(), *artifact)
	g.Expect(err).NotTo(HaveOccurred())

	g.Expect(second).To(Equal(first))
	g.Expect(filepath.Dir(first)).To(Equal(c.Root()))
	g.Expect(readFile(g, filepath.Join(first, "a.yaml"))).To(Equal("a"))
	g.Expect(env.Artifacts.Requests(artifact.Path)).To(BeEquivalentTo(1))
}

func TestCacheConcurrentGetsFetchOnce(t *testing.T) {
	g := NewWithT(t)
	c := newCache(t)
	artifact := publish(t, map[string]testenv.File{"a.yaml": {Body: "a"}})

	dirs := make([]string, 8)
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = c.Get(context.Background(), *artifact) })
	}
	wg.Wait()

	g.Expect(errors.Join(errs...)).NotTo(HaveOccurred())
	for _, dir := range dirs {
		g.Expect(dir).To(Equal(dirs[0]))
	}
	g.Expect(env.Artifacts.Requests(artifact.Path)).To(BeEquivalentTo(1))
}

func TestCacheSeparatesArtifacts(t *testing.T) {
	g := NewWithT(t)
	c := newCache(t)
	one := publish(t, map[string]testenv.File{"a.yaml": {Body: "one"}})
	two := publish(t, map[string]testenv.File{"a.yaml": {Body: "two"}})
	// The same bytes at another address: same digest, other URL.
	data, err := testenv.Tarball(map[string]testenv.File{"a.yaml": {Body: "one"}})
	g.Expect(err).NotTo(HaveOccurred())
	copyOfOne := env.Artifacts.PublishRaw(testenv.RandomName("copy")+".tar.gz", "main@sha1:1", data)
	g.Expect(copyOfOne.Digest).To(Equal(one.Digest))

	dirs := map[string]string{}
	for name, artifact := range map[string]*meta.Artifact{"one": one, "two": two, "copy": copyOfOne} {
		dir, err := c.Get(context.Background(), *artifact)
		g.Expect(err).NotTo(HaveOccurred())
		dirs[name] = dir
	}

	g.Expect(dirs["one"]).NotTo(Equal(dirs["two"]))
	g.Expect(dirs["one"]).NotTo(Equal(dirs["copy"]))
	g.Expect(readFile(g, filepath.Join(dirs["one"], "a.yaml"))).To(Equal("one"))
	g.Expect(readFile(g, filepath.Join(dirs["two"], "a.yaml"))).To(Equal("two"))
	g.Expect(readFile(g, filepath.Join(dirs["copy"], "a.yaml"))).To(Equal("one"))
}

func TestCacheDoesNotRememberFailures(t *testing.T) {
	g := NewWithT(t)
	c := newCache(t)
	path := testenv.RandomName("late") + ".tar.gz"
	artifact := env.Artifacts.PublishRaw(path, "main@sha1:1", []byte("garbage"))

	_, err := c.Get(context.Background(), *artifact)
	var artifactErr *ArtifactError
	g.Expect(errors.As(err, &artifactErr)).To(BeTrue(), "error %v is not an ArtifactError", err)
	// The failed attempt leaves nothing behind.
	g.Expect(listFiles(t, c.Root())).To(BeEmpty())

	// The source now serves the artifact its status announces.
	data, err := testenv.Tarball(map[string]testenv.File{"a.yaml": {Body: "a"}})
	g.Expect(err).NotTo(HaveOccurred())
	artifact = env.Artifacts.PublishRaw(path, "main@sha1:1", data)
	dir, err := c.Get(context.Background(), *artifact)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(readFile(g, filepath.Join(dir, "a.yaml"))).To(Equal("a"))
	g.Expect(env.Artifacts.Requests(path)).To(BeEquivalentTo(2))
}

func TestCacheClose(t *testing.T) {
	g := NewWithT(t)
	c, err := NewCache(&Fetcher{})
	g.Expect(err).NotTo(HaveOccurred())
	artifact := publish(t, map[string]testenv.File{"a.yaml": {Body: "a"}})
	dir, err := c.Get(context.Background(), *artifact)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(dir).To(BeADirectory())

	g.Expect(c.Close()).To(Succeed())
	g.Expect(c.Root()).NotTo(BeAnExistingFile())
	g.Expect(c.Close()).To(Succeed())

	_, err = c.Get(context.Background(), *artifact)
	g.Expect(err).To(MatchError(ContainSubstring("closed")))
}

func TestCacheWaiterHonoursContext(t *testing.T) {
	g := NewWithT(t)
	c := newCache(t)
	artifact := publish(t, map[string]testenv.File{"a.yaml": {Body: "a"}})
	// Another caller's fetch of the artifact that never ends.
	c.entries[cacheKey{digest: artifact.Digest, url: artifact.URL}] = &cacheEntry{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := c.Get(ctx, *artifact)
	g.Expect(err).To(MatchError(context.Canceled))
	var artifactErr *ArtifactError
	g.Expect(errors.As(err, &artifactErr)).To(BeTrue())
}
