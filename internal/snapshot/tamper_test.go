package snapshot

import (
	"bytes"
	"compress/gzip"
	"context"
	"runtime"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/names"
)

// These tests play a tenant who can write Secrets in the StageSet's
// namespace but does not hold the controller's key.

// forgedSnapshot is what a tenant would like the controller to apply.
func forgedSnapshot(ns string) *Snapshot {
	return &Snapshot{Revision: "forged", Stages: []Stage{{Name: "app", Objects: []*unstructured.Unstructured{
		configMap(ns, "forged", map[string]any{"owned": "yes"}),
	}}}}
}

func TestLoadRefusesASnapshotNotSealedWithTheKey(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	store := &Store{Key: testKey, Client: env.Client}

	// Every digest is right and the owner is the StageSet: only the MAC,
	// made with another key, is wrong.
	obj := newStageSet(t, ns, "shop")
	g.Expect(store.Save(ctx, obj, threeStages("1"))).To(Succeed())
	forger := &Store{Key: integrity.NewRandomKey(), Client: env.Client}
	g.Expect(forger.Save(ctx, obj, forgedSnapshot(ns))).To(Succeed())
	got, err := store.Load(ctx, obj)
	g.Expect(got).To(BeNil())
	g.Expect(err).To(MatchError(ErrUntrusted))
	g.Expect(err).To(MatchError(ErrCorrupt))
	g.Expect(err).To(MatchError(integrity.ErrUnverified))
	g.Expect(err.Error()).To(ContainSubstring("failed verification: the index in Secret shop-snapshot carries no valid MAC"))

	// No MAC at all.
	head := &corev1.Secret{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: headName(obj.Name)}, head)).To(Succeed())
	delete(head.Data, macKey)
	g.Expect(env.Client.Update(ctx, head)).To(Succeed())
	_, err = store.Load(ctx, obj)
	g.Expect(err).To(MatchError(ErrUntrusted))

	// The next Save of the controller replaces the forgery.
	g.Expect(store.Save(ctx, obj, threeStages("2"))).To(Succeed())
	got, err = store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("2")))
}

// A genuine snapshot of one StageSet, copied under the names of another,
// does not verify for the other.
func TestSnapshotIsBoundToItsStageSet(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	store := &Store{Key: testKey, Client: env.Client}
	source, target := newStageSet(t, ns, "source"), newStageSet(t, ns, "target")
	g.Expect(store.Save(ctx, source, forgedSnapshot(ns))).To(Succeed())

	copyTo := func(from, to string, generation *int64) {
		s := &corev1.Secret{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: from}, s)).To(Succeed())
		forged := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: to}, Type: SecretType, Data: s.Data}
		store.setMeta(forged, target, generation)
		g.Expect(env.Client.Create(ctx, forged)).To(Succeed())
	}
	gen := int64(1)
	copyTo(chunkName("source", 1, 0), chunkName("target", 1, 0), &gen)
	copyTo(headName("source"), headName("target"), nil)

	got, err := store.Load(ctx, target)
	g.Expect(got).To(BeNil())
	g.Expect(err).To(MatchError(ErrUntrusted))
}

// An index sealed with the key but claiming sizes Save never writes is
// refused before anything is allocated by its claims.
func TestLoadRefusesAnIndexWithImpossibleSizes(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	store := &Store{Key: testKey, Client: env.Client}
	ref := chunkRef{Name: "x", Digest: digest(nil)}

	cases := map[string]struct {
		size    int
		chunks  int
		message string
	}{
		"huge size":            {1 << 40, 1, "its size 1099511627776 does not fit 1 chunks"},
		"size beyond chunks":   {3*MaxChunkSize + 1, 3, "does not fit 3 chunks"},
		"size short of chunks": {MaxChunkSize, 2, "does not fit 2 chunks"},
		"too many chunks":      {100 * MaxChunkSize, 100, "it names 100 chunks, more than 64"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newStageSet(t, ns, testenvName(name))
			idx := index{Generation: 1, UID: obj.UID, Digest: digest(nil), Size: tc.size}
			for range tc.chunks {
				idx.Chunks = append(idx.Chunks, ref)
			}
			g.Expect(store.writeHead(ctx, obj, nil, idx)).To(Succeed())

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := store.Load(ctx, obj)
			runtime.ReadMemStats(&after)
			g.Expect(got).To(BeNil())
			g.Expect(err).To(MatchError(ErrCorrupt))
			g.Expect(err.Error()).To(ContainSubstring(tc.message))
			g.Expect(after.TotalAlloc-before.TotalAlloc).To(BeNumerically("<", 1<<20), "bytes allocated by Load")
		})
	}
}

// testenvName turns a case name into a StageSet name.
func testenvName(name string) string {
	return string(bytes.ReplaceAll([]byte(name), []byte(" "), []byte("-")))
}

// A small document that expands beyond MaxDecodedSize is refused, and
// decoding it allocates about the limit, not the expansion.
func TestDecodeRefusesAGzipBomb(t *testing.T) {
	g := NewWithT(t)
	// One gzip member of 16 MiB of zeros is about 16 KiB; gzip readers read
	// concatenated members as one stream: 64 of them expand to 1 GiB.
	var member bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	_, _ = gz.Write(make([]byte, 16<<20))
	g.Expect(gz.Close()).To(Succeed())
	bomb := bytes.Repeat(member.Bytes(), 64)
	g.Expect(len(bomb)).To(BeNumerically("<", 2<<20))

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := decode(bomb)
	runtime.ReadMemStats(&after)
	g.Expect(err).To(MatchError(ContainSubstring("expands to more than 67108864 bytes")))
	// TotalAlloc counts the whole process (the test bed allocates too, more
	// under -race); without the cap decode allocates about 2.7 GB.
	g.Expect(after.TotalAlloc-before.TotalAlloc).To(BeNumerically("<", 8*MaxDecodedSize), "bytes allocated by decode")
}

func TestSaveRefusesTooLargeASnapshot(t *testing.T) {
	g := NewWithT(t)
	big := &Snapshot{Stages: []Stage{{Name: "app", Objects: []*unstructured.Unstructured{
		configMap("shop", "big", map[string]any{"blob": strings.Repeat("x", MaxDecodedSize)}),
	}}}}
	_, err := encode(big)
	g.Expect(err).To(MatchError(ContainSubstring("exceed the limit of 67108864")))
}

// The controller writes with its own rights: a Secret of a snapshot's name
// that it did not write for this StageSet is neither overwritten nor
// deleted, and the failure says why.
func TestSaveNeverOverwritesAForeignSecret(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	store := &Store{Key: testKey, Client: env.Client}

	cases := map[string]struct {
		secret  func(obj, other *metav1.ObjectMeta) *corev1.Secret
		message string
	}{
		"head of another type": {func(obj, _ *metav1.ObjectMeta) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: headName(obj.Name)}, Type: corev1.SecretTypeOpaque}
		}, `Secret %s has type "Opaque"`},
		"chunk of another type": {func(obj, _ *metav1.ObjectMeta) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: chunkName(obj.Name, 1, 0)}, Type: corev1.SecretTypeOpaque}
		}, "refusing to overwrite Secret %s"},
		"head of another owner": {func(obj, other *metav1.ObjectMeta) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: headName(obj.Name), OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "ConfigMap", Name: other.Name, UID: other.UID, Controller: new(true),
			}}}, Type: SecretType}
		}, "refusing to overwrite Secret %s"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newStageSet(t, ns, testenvName(name))
			other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "other-"}}
			g.Expect(env.Client.Create(ctx, other)).To(Succeed())
			secret := tc.secret(&obj.ObjectMeta, &other.ObjectMeta)
			secret.Namespace = ns
			secret.Labels = map[string]string{"stageset.io/name": names.LabelValue(obj.Name), GenerationLabel: "1"}
			secret.Data = map[string][]byte{"password": []byte("hunter2"), chunkKey: []byte("mine")}
			g.Expect(env.Client.Create(ctx, secret)).To(Succeed())

			err := store.Save(ctx, obj, threeStages("1"))
			g.Expect(err).To(MatchError(ErrForeign))
			g.Expect(err.Error()).To(ContainSubstring(tc.message, secret.Name))

			after := &corev1.Secret{}
			g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(secret), after)).To(Succeed())
			g.Expect(after.Type).To(Equal(secret.Type))
			g.Expect(after.Data).To(Equal(secret.Data))
			g.Expect(after.OwnerReferences).To(Equal(secret.OwnerReferences))
			g.Expect(after.Annotations).NotTo(HaveKey(WriterAnnotation))
		})
	}
}
