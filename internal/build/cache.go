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
// It holds at most a fixed number of stages and a fixed number of bytes
// (the JSON size of the objects), evicting the least recently used: a count
// alone would let a few huge stages hold the controller's memory.
type Cache struct {
	mu       sync.Mutex
	max      int
	maxBytes int64
	bytes    int64
	clock    uint64
	entries  map[string]*cacheEntry
}

type cacheEntry struct {
	fingerprint string
	objects     []*unstructured.Unstructured
	size        int64
	used        uint64
}

// NewCache returns a cache of at most max stages and maxBytes bytes of
// objects (as JSON).
func NewCache(max int, maxBytes int64) *Cache {
	return &Cache{max: max, maxBytes: maxBytes, entries: map[string]*cacheEntry{}}
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
// A build larger than the whole cache is not kept.
func (c *Cache) Put(key, fingerprint string, objects []*unstructured.Unstructured) {
	size := sizeOf(objects)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.remove(key)
	if size > c.maxBytes {
		return
	}
	for len(c.entries) > 0 && (len(c.entries) >= c.max || c.bytes+size > c.maxBytes) {
		var oldest string
		for k, e := range c.entries {
			if oldest == "" || e.used < c.entries[oldest].used {
				oldest = k
			}
		}
		c.remove(oldest)
	}
	c.clock++
	c.entries[key] = &cacheEntry{fingerprint: fingerprint, objects: CopyObjects(objects), size: size, used: c.clock}
	c.bytes += size
}

// Forget drops every entry whose key starts with prefix (a deleted StageSet).
func (c *Cache) Forget(prefix string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if strings.HasPrefix(k, prefix) {
			c.remove(k)
		}
	}
}

// Holds tells whether an entry's key starts with prefix.
func (c *Cache) Holds(prefix string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// Bytes returns the JSON size of the objects the cache holds.
func (c *Cache) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

func (c *Cache) remove(key string) {
	if e, ok := c.entries[key]; ok {
		c.bytes -= e.size
		delete(c.entries, key)
	}
}

// sizeOf is the JSON size of objects, the measure of the cache's bound.
func sizeOf(objects []*unstructured.Unstructured) int64 {
	var n int64
	for _, o := range objects {
		raw, err := o.MarshalJSON()
		if err != nil {
			// Not cacheable as measured: count it as too large.
			return 1 << 62
		}
		n += int64(len(raw))
	}
	return n
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
