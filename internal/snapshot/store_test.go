package snapshot

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/names"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// newStageSet creates a StageSet on the API server, so that it has the UID
// the snapshot Secrets are owned through.
func newStageSet(t *testing.T, ns, name string) *stagesetv1.StageSet {
	t.Helper()
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: time.Hour},
			SourceRef: &stagesetv1.SourceReference{Kind: "GitRepository", Name: "repo"},
			Stages:    []stagesetv1.Stage{{Name: "crds"}, {Name: "db"}, {Name: "app"}},
		},
	}
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating StageSet: %v", err)
	}
	return obj
}

func configMap(ns, name string, data map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata": map[string]any{
			"name":      name,
			"namespace": ns,
			"labels":    map[string]any{stagesetv1.NameLabel: "shop", stagesetv1.StageLabel: "app"},
		},
		"data": data,
	}}
	return obj
}

// threeStages has objects with integers, booleans, nested lists and a
// cluster-scoped object, to catch any loss in the JSON round trip.
func threeStages(revision string) *Snapshot {
	deployment := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "web", "namespace": "shop", "annotations": map[string]any{"a": "b"}},
		"spec": map[string]any{
			"replicas": int64(3),
			"paused":   false,
			"template": map[string]any{"spec": map[string]any{"containers": []any{
				map[string]any{"name": "web", "image": "nginx:" + revision, "ports": []any{map[string]any{"containerPort": int64(8080)}}},
			}}},
		},
	}}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "widgets.example.com"},
		"spec":       map[string]any{"group": "example.com", "scope": "Namespaced"},
	}}
	return &Snapshot{
		Revision:  "main@sha1:" + revision,
		Revisions: map[string]string{"GitRepository/shop/repo": "main@sha1:" + revision, "OCIRepository/shop/app": "v1@sha256:" + revision},
		Stages: []Stage{
			{Name: "crds", Revision: "main@sha1:" + revision, Objects: []*unstructured.Unstructured{crd}},
			{Name: "db", Revision: "main@sha1:" + revision, Objects: []*unstructured.Unstructured{configMap("shop", "db", map[string]any{"rev": revision})}},
			{Name: "app", Revision: "v1@sha256:" + revision, Objects: []*unstructured.Unstructured{deployment, configMap("shop", "app", map[string]any{"x": "y"})}},
		},
	}
}

// incompressible returns n characters of base64 of random bytes.
func incompressible(n int) string {
	b := make([]byte, n*3/4)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// chunks returns the chunk Secrets of a StageSet, by name.
func chunks(g Gomega, obj *stagesetv1.StageSet) map[string]corev1.Secret {
	var list corev1.SecretList
	g.Expect(env.Client.List(context.Background(), &list, client.InNamespace(obj.Namespace),
		client.MatchingLabels{stagesetv1.NameLabel: names.LabelValue(obj.Name)}, client.HasLabels{GenerationLabel})).To(Succeed())
	out := map[string]corev1.Secret{}
	for _, s := range list.Items {
		out[s.Name] = s
	}
	return out
}

func generations(g Gomega, obj *stagesetv1.StageSet) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range chunks(g, obj) {
		if gen := s.Labels[GenerationLabel]; !seen[gen] {
			seen[gen] = true
			out = append(out, gen)
		}
	}
	return out
}

func TestSaveThenLoadRoundTrips(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "shop")
	store := &Store{Key: testKey, Client: env.Client}

	want := threeStages("1")
	g.Expect(store.Save(ctx, obj, want)).To(Succeed())

	got, err := store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(want))
	g.Expect(got.Stage("app").Objects[0].Object["spec"].(map[string]any)["replicas"]).To(Equal(int64(3)))

	// An uncached reader serves the reads when given.
	store = &Store{Key: testKey, Client: env.Client, Reader: env.Client}
	got, err = store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(want))
}

func TestLargeStageIsSplitAcrossSecrets(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "big")
	store := &Store{Key: testKey, Client: env.Client}

	objects := make([]*unstructured.Unstructured, 0, 50)
	for i := range 50 {
		objects = append(objects, configMap("big", fmt.Sprintf("cm-%02d", i), map[string]any{"blob": incompressible(100_000)}))
	}
	want := &Snapshot{Revision: "main@sha1:big", Stages: []Stage{{Name: "app", Revision: "main@sha1:big", Objects: objects}}}
	g.Expect(store.Save(ctx, obj, want)).To(Succeed())

	got, err := store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(want))

	secrets := chunks(g, obj)
	g.Expect(len(secrets)).To(BeNumerically(">=", 4), "5 MB of base64 compresses to about 3.8 MB")
	for name, s := range secrets {
		size := 0
		for _, v := range s.Data {
			size += len(v)
		}
		g.Expect(size).To(BeNumerically("<=", MaxChunkSize), name)
		g.Expect(size).To(BeNumerically("<", 1<<20), name)
	}
}

func TestSaveReplacesTheLastSnapshotAndKeepsOnlyThePrevious(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "shop")
	store := &Store{Key: testKey, Client: env.Client}

	g.Expect(store.Save(ctx, obj, threeStages("1"))).To(Succeed())
	g.Expect(generations(g, obj)).To(ConsistOf("1"))

	g.Expect(store.Save(ctx, obj, threeStages("2"))).To(Succeed())
	got, err := store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("2")))
	g.Expect(generations(g, obj)).To(ConsistOf("1", "2"))

	g.Expect(store.Save(ctx, obj, threeStages("3"))).To(Succeed())
	got, err = store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("3")))
	g.Expect(generations(g, obj)).To(ConsistOf("2", "3"))
}

func TestSaveReplacesWhatAFailedSaveLeftBehind(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "shop")
	store := &Store{Key: testKey, Client: env.Client}
	g.Expect(store.Save(ctx, obj, threeStages("1"))).To(Succeed())

	// A Save that wrote chunks of generation 2 and died before moving the
	// head: one chunk has the name the next Save uses, one is surplus.
	for _, i := range []int{0, 7} {
		leftover := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: chunkName(obj.Name, 2, i)}, Type: SecretType}
		gen := int64(2)
		store.setMeta(leftover, obj, &gen)
		leftover.Data = map[string][]byte{chunkKey: []byte("half written")}
		g.Expect(env.Client.Create(ctx, leftover)).To(Succeed())
	}
	got, err := store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("1")), "readers do not see chunks the head does not point at")

	g.Expect(store.Save(ctx, obj, threeStages("2"))).To(Succeed())
	got, err = store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("2")))
	g.Expect(chunks(g, obj)).NotTo(HaveKey(chunkName(obj.Name, 2, 7)))
}

func TestLoadWithoutSnapshotReturnsNothing(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	store := &Store{Key: testKey, Client: env.Client}

	got, err := store.Load(ctx, newStageSet(t, ns, "fresh"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeNil())

	// A StageSet deleted and created again under the same name does not
	// inherit the snapshot of its predecessor (its Secrets wait for the
	// garbage collector, which envtest does not run).
	old := newStageSet(t, ns, "again")
	g.Expect(store.Save(ctx, old, threeStages("1"))).To(Succeed())
	g.Expect(env.Client.Delete(ctx, old)).To(Succeed())
	g.Eventually(func() error {
		return env.Client.Get(ctx, client.ObjectKeyFromObject(old), &stagesetv1.StageSet{})
	}, testenv.Timeout, testenv.Poll).Should(MatchError(ContainSubstring("not found")))
	renewed := newStageSet(t, ns, "again")
	got, err = store.Load(ctx, renewed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeNil())

	// Its first Save takes the Secrets over.
	g.Expect(store.Save(ctx, renewed, threeStages("2"))).To(Succeed())
	got, err = store.Load(ctx, renewed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("2")))
	for name, s := range chunks(g, renewed) {
		g.Expect(s.OwnerReferences).To(HaveLen(1), name)
		g.Expect(s.OwnerReferences[0].UID).To(Equal(renewed.UID), name)
	}
}

func TestLoadFailsOnAMissingOrAlteredChunk(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	store := &Store{Key: testKey, Client: env.Client}
	// Two chunks at least, so that a partial snapshot could be assembled.
	twoChunks := &Snapshot{Stages: []Stage{{Name: "app", Objects: []*unstructured.Unstructured{
		configMap(ns, "a", map[string]any{"blob": incompressible(700_000)}),
		configMap(ns, "b", map[string]any{"blob": incompressible(700_000)}),
	}}}}

	firstChunk := func(obj *stagesetv1.StageSet) string { return chunkName(obj.Name, 1, 0) }
	secondChunk := func(obj *stagesetv1.StageSet) string { return chunkName(obj.Name, 1, 1) }

	cases := []struct {
		name   string
		damage func(g Gomega, obj *stagesetv1.StageSet)
		// message is a format for the name of the damaged Secret.
		message string
		secret  func(obj *stagesetv1.StageSet) string
	}{
		{"deleted chunk", func(g Gomega, obj *stagesetv1.StageSet) {
			chunk := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: chunkName(obj.Name, 1, 1)}}
			g.Expect(env.Client.Delete(ctx, chunk)).To(Succeed())
		}, "chunk 2 of 2: snapshot is corrupt: Secret %s is missing", secondChunk},
		{"altered chunk", func(g Gomega, obj *stagesetv1.StageSet) {
			chunk := &corev1.Secret{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: chunkName(obj.Name, 1, 0)}, chunk)).To(Succeed())
			chunk.Data[chunkKey][100] ^= 0xff
			g.Expect(env.Client.Update(ctx, chunk)).To(Succeed())
		}, "chunk 1 of 2: snapshot is corrupt: Secret %s has digest", firstChunk},
		{"chunk relabelled to another generation", func(g Gomega, obj *stagesetv1.StageSet) {
			chunk := &corev1.Secret{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: chunkName(obj.Name, 1, 0)}, chunk)).To(Succeed())
			chunk.Labels[GenerationLabel] = "7"
			g.Expect(env.Client.Update(ctx, chunk)).To(Succeed())
		}, "Secret %s is not part of generation 1", firstChunk},
		{"altered index", func(g Gomega, obj *stagesetv1.StageSet) {
			head := &corev1.Secret{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: headName(obj.Name)}, head)).To(Succeed())
			head.Data[indexKey] = []byte("{")
			g.Expect(env.Client.Update(ctx, head)).To(Succeed())
		}, "failed verification: the index in Secret %s carries no valid MAC", func(obj *stagesetv1.StageSet) string { return headName(obj.Name) }},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newStageSet(t, ns, fmt.Sprintf("broken-%d", i))
			g.Expect(store.Save(ctx, obj, twoChunks)).To(Succeed())
			g.Expect(chunks(g, obj)).To(HaveLen(2))

			tc.damage(g, obj)
			got, err := store.Load(ctx, obj)
			g.Expect(got).To(BeNil())
			g.Expect(err).To(MatchError(ErrCorrupt))
			g.Expect(err.Error()).To(ContainSubstring(tc.message, tc.secret(obj)))

			// The next Save repairs the store.
			g.Expect(store.Save(ctx, obj, threeStages("9"))).To(Succeed())
			got, err = store.Load(ctx, obj)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(got).To(Equal(threeStages("9")))
		})
	}
}

func TestSecretsAreOwnedByTheStageSetAndLabelled(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "shop")
	store := &Store{Key: testKey, Client: env.Client}
	g.Expect(store.Save(ctx, obj, threeStages("1"))).To(Succeed())

	var list corev1.SecretList
	g.Expect(env.Client.List(ctx, &list, client.InNamespace(obj.Namespace))).To(Succeed())
	g.Expect(list.Items).To(HaveLen(2), "one head and one chunk")
	for _, s := range list.Items {
		g.Expect(s.Type).To(Equal(corev1.SecretType("stageset.io/snapshot")))
		g.Expect(s.Labels).To(HaveKeyWithValue("stageset.io/name", "shop"))
		g.Expect(s.OwnerReferences).To(ConsistOf(metav1.OwnerReference{
			APIVersion:         "stageset.io/v1",
			Kind:               "StageSet",
			Name:               "shop",
			UID:                obj.UID,
			Controller:         new(true),
			BlockOwnerDeletion: new(false),
		}))
		switch s.Name {
		case "shop-snapshot":
			g.Expect(s.Labels).NotTo(HaveKey(GenerationLabel))
		case "shop-snapshot-1-0":
			g.Expect(s.Labels).To(HaveKeyWithValue("stageset.io/snapshot-generation", "1"))
		default:
			t.Errorf("unexpected Secret %s", s.Name)
		}
	}
}

func TestLongStageSetNamesGetValidSecretNamesAndLabels(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	name := strings.Repeat("a", 200) + "." + strings.Repeat("b", 52)
	obj := newStageSet(t, env.NewNamespace(t), name)
	store := &Store{Key: testKey, Client: env.Client}

	g.Expect(store.Save(ctx, obj, threeStages("1"))).To(Succeed())
	g.Expect(store.Save(ctx, obj, threeStages("2"))).To(Succeed())
	got, err := store.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(threeStages("2")))

	secrets := chunks(g, obj)
	g.Expect(secrets).To(HaveLen(2))
	for n, s := range secrets {
		g.Expect(len(n)).To(BeNumerically("<=", validation.DNS1123SubdomainMaxLength))
		g.Expect(len(s.Labels[stagesetv1.NameLabel])).To(BeNumerically("<=", validation.LabelValueMaxLength))
	}
}

func TestSaveWithoutRightsOnSecretsFails(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "shop")

	cfg, err := env.AddUser(testenv.RandomName("nobody"))
	g.Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())

	store := &Store{Key: testKey, Client: c}
	err = store.Save(ctx, obj, threeStages("1"))
	g.Expect(err).To(MatchError(ContainSubstring("forbidden")))
	g.Expect(err.Error()).To(HavePrefix("saving snapshot of %s/shop", obj.Namespace))

	// Reading is not enough either: creating the chunks is refused.
	reader := &Store{Key: testKey, Client: c, Reader: env.Client}
	err = reader.Save(ctx, obj, threeStages("1"))
	g.Expect(err).To(MatchError(ContainSubstring("writing chunk shop-snapshot-1-0")))
	g.Expect(err).To(MatchError(ContainSubstring("forbidden")))
	got, err := (&Store{Key: testKey, Client: env.Client}).Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeNil())
}
