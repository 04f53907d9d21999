package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Cache keeps the last build of each stage in memory, so a steady-state run
// whose artifact and build inputs did not change neither downloads nor
// builds again: that is what keeps a short driftDetectionInterval cheap.
// It holds at most a fixed number of stages, evicting the least recently
// used.
type Cache struct {
	mu      sync.Mutex
	max     int
	clock   uint64
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	fingerprint string
	objects     []*unstructured.Unstructured
	used        uint64
}

// NewCache returns a cache of at most max stages.
func NewCache(max int) *Cache {
	return &Cache{max: max, entries: map[string]*cacheEntry{}}
}

// Fingerprint identifies a build: the artifact digest and every input of
// Build except the extraction folder, which changes every run.
func Fingerprint(artifactDigest string, in Input) string {
	data, _ := json.Marshal(struct {
		Digest          string
		Path            string
		TargetNamespace string
		Patches         any
		// A nil map (no postBuild) encodes as null, an empty one as {}.
		Substitute map[string]string
	}{artifactDigest, in.Path, in.TargetNamespace, in.Patches, in.Substitute})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Get returns copies of the objects built for key with this fingerprint.
func (c *Cache) Get(key, fingerprint string) ([]*unstructured.Unstructured, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.fingerprint != fingerprint {
		return nil, false
	}
	c.clock++
	e.used = c.clock
	return CopyObjects(e.objects), true
}

// Put records the objects built for key, evicting the least recently used
// stage when full.
func (c *Cache) Put(key, fingerprint string, objects []*unstructured.Unstructured) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		var oldest string
		for k, e := range c.entries {
			if oldest == "" || e.used < c.entries[oldest].used {
				oldest = k
			}
		}
		delete(c.entries, oldest)
	}
	c.clock++
	c.entries[key] = &cacheEntry{fingerprint: fingerprint, objects: CopyObjects(objects), used: c.clock}
}

// Forget drops every entry whose key starts with prefix (a deleted StageSet).
func (c *Cache) Forget(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if strings.HasPrefix(k, prefix) {
			delete(c.entries, k)
		}
	}
}

// CopyObjects returns deep copies of objects, for callers that change what
// they apply (labels, names) while the originals are kept.
func CopyObjects(objects []*unstructured.Unstructured) []*unstructured.Unstructured {
	out := make([]*unstructured.Unstructured, len(objects))
	for i, o := range objects {
		out[i] = o.DeepCopy()
	}
	return out
}
