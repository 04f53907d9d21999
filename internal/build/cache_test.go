package build

import (
	"testing"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func object(name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("v1")
	u.SetKind("ConfigMap")
	u.SetName(name)
	return u
}

func TestCacheReturnsCopiesOfMatchingBuilds(t *testing.T) {
	c := NewCache(2, 1<<20)
	in := Input{Root: "/tmp/a", Path: "./app", Substitute: map[string]string{"x": "1"}}
	fp := Fingerprint("sha256:aaa", in)
	c.Put("uid/app", fp, []*unstructured.Unstructured{object("one")})

	got, ok := c.Get("uid/app", fp)
	if !ok || len(got) != 1 || got[0].GetName() != "one" {
		t.Fatalf("Get = %v, %v", got, ok)
	}
	got[0].SetLabels(map[string]string{"mutated": "yes"})
	again, _ := c.Get("uid/app", fp)
	if again[0].GetLabels() != nil {
		t.Fatal("the cache handed out its own objects")
	}

	in.Root = "/tmp/elsewhere" // the extraction folder changes every run
	if Fingerprint("sha256:aaa", in) != fp {
		t.Fatal("the fingerprint depends on the extraction folder")
	}
	for name, changed := range map[string]string{
		"digest":    Fingerprint("sha256:bbb", in),
		"path":      Fingerprint("sha256:aaa", Input{Path: "./other", Substitute: in.Substitute}),
		"namespace": Fingerprint("sha256:aaa", Input{Path: in.Path, TargetNamespace: "ns", Substitute: in.Substitute}),
		"vars":      Fingerprint("sha256:aaa", Input{Path: in.Path, Substitute: map[string]string{"x": "2"}}),
		"no vars":   Fingerprint("sha256:aaa", Input{Path: in.Path}),
		"patches":   Fingerprint("sha256:aaa", Input{Path: in.Path, Substitute: in.Substitute, Patches: []kustomize.Patch{{Patch: "x"}}}),
	} {
		if changed == fp {
			t.Errorf("changing the %s keeps the fingerprint", name)
		}
		if _, ok := c.Get("uid/app", changed); ok {
			t.Errorf("changing the %s still hits the cache", name)
		}
	}
}

func TestCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	c := NewCache(2, 1<<20)
	c.Put("a", "f", nil)
	c.Put("b", "f", nil)
	c.Get("a", "f")
	c.Put("c", "f", nil)
	if _, ok := c.Get("b", "f"); ok {
		t.Error("b should have been evicted")
	}
	for _, k := range []string{"a", "c"} {
		if _, ok := c.Get(k, "f"); !ok {
			t.Errorf("%s was evicted", k)
		}
	}
	c.Forget("a")
	if _, ok := c.Get("a", "f"); ok {
		t.Error("Forget kept a")
	}
}

// The cache is bounded in bytes as well as in entries: the least recently
// used builds go first, and a build larger than the bound is not kept.
func TestCacheIsBoundedInBytes(t *testing.T) {
	one := []*unstructured.Unstructured{object("one")}
	size := sizeOf(one)
	c := NewCache(100, 2*size)
	c.Put("a", "fp", one)
	c.Put("b", "fp", one)
	if _, ok := c.Get("a", "fp"); !ok {
		t.Fatal("a evicted while within bounds")
	}
	c.Put("c", "fp", one) // b is the least recently used
	if _, ok := c.Get("b", "fp"); ok {
		t.Fatal("b kept beyond the byte bound")
	}
	if c.Bytes() != 2*size {
		t.Fatalf("Bytes = %d, want %d", c.Bytes(), 2*size)
	}
	c.Put("huge", "fp", []*unstructured.Unstructured{object("one"), object("two"), object("three")})
	if _, ok := c.Get("huge", "fp"); ok {
		t.Fatal("a build larger than the cache was kept")
	}
	c.Forget("a")
	if c.Holds("a") || c.Bytes() != size {
		t.Fatalf("Forget left a, or %d bytes", c.Bytes())
	}
}
