package snapshot

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzDecode feeds decode random bytes and gzipped random documents: it
// may refuse them, never panic, and what it accepts encodes and decodes
// back to the same snapshot.
func FuzzDecode(f *testing.F) {
	valid, err := encode(threeStages("1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, false)
	f.Add(valid[:len(valid)/2], false)
	f.Add([]byte{}, false)
	for _, doc := range []string{
		`{"version":1,"stages":[{"name":"a","objects":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}]}]}`,
		`{"version":1,"stages":[{"name":"a","objects":[{}]}]}`,
		`{"version":1,"stages":[{"name":"a","objects":[null, 1, "x", []]}]}`,
		`{"version":2,"stages":[]}`,
		`{"version":1,"revisions":{"a":"b"},"stages":null}`,
		`{"version":1,"stages":[{"objects":[{"kind":"List","apiVersion":"v1","items":[{"kind":"X"}]}]}]}`,
		`{"version":1e400}`,
		`[`,
	} {
		f.Add([]byte(doc), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, compress bool) {
		if compress {
			data = gzipped(t, data)
		}
		snap, err := decode(data)
		if err != nil {
			if snap != nil {
				t.Fatal("decode returned a snapshot with its error")
			}
			return
		}
		again, err := encode(snap)
		if err != nil {
			return // Objects decode need not be objects Save would store.
		}
		back, err := decode(again)
		if err != nil {
			t.Fatalf("a decoded snapshot does not decode once encoded again: %v", err)
		}
		if !reflect.DeepEqual(snap, back) {
			t.Fatalf("the round trip changed the snapshot:\n%#v\n%#v", snap, back)
		}
	})
}

// secretReader serves Secrets from a map, as the API server would.
type secretReader map[string]*corev1.Secret

func (r secretReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	s, ok := r[key.Name]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, key.Name)
	}
	s.DeepCopyInto(obj.(*corev1.Secret))
	return nil
}

func (r secretReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("not served")
}

// splice returns data with cut bytes at pos replaced by patch.
func splice(data []byte, pos uint32, cut uint8, patch []byte) []byte {
	p := int(pos) % (len(data) + 1)
	end := min(p+int(cut), len(data))
	return append(append(append([]byte{}, data[:p]...), patch...), data[end:]...)
}

// FuzzLoadTampered stores a genuine snapshot as Save does, lets a tenant
// who writes Secrets but lacks the key change one stored byte string (the
// index, its MAC, the chunk, the chunk's generation label or the head's
// type) or forge a whole snapshot with consistent digests, and loads it:
// anything changed is refused with ErrCorrupt (or ErrForeign for the head's
// type), anything unchanged loads as saved.
func FuzzLoadTampered(f *testing.F) {
	for which := range uint8(6) {
		f.Add(which, uint32(0), uint8(1), []byte("x"))
		f.Add(which, uint32(20), uint8(0), []byte{})
		f.Add(which, uint32(7), uint8(3), []byte("999"))
	}
	f.Add(uint8(0), uint32(14), uint8(1), []byte("2"))                      // another generation
	f.Add(uint8(0), uint32(0), uint8(255), []byte(`{"generation":1}`))      // a short index
	f.Add(uint8(2), uint32(1<<31), uint8(255), []byte{0x1f, 0x8b, 0x08, 0}) // gzip garbage
	f.Fuzz(func(t *testing.T, which uint8, pos uint32, cut uint8, patch []byte) {
		ctx := context.Background()
		obj := &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "shop", UID: "uid-1"}}
		store := &Store{Key: testKey}
		want := threeStages("1")
		data, err := encode(want)
		if err != nil {
			t.Fatal(err)
		}
		generation := int64(1)
		chunk := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: chunkName(obj.Name, generation, 0)},
			Type: SecretType, Data: map[string][]byte{chunkKey: data}}
		store.setMeta(chunk, obj, &generation)
		head := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: headName(obj.Name)}, Type: SecretType}
		store.setMeta(head, obj, nil)
		idx := index{Generation: generation, UID: obj.UID, Digest: digest(data), Size: len(data),
			Chunks: []chunkRef{{Name: chunk.Name, Digest: digest(data)}}}
		raw, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		head.Data = map[string][]byte{indexKey: raw, macKey: []byte(store.Key.Sum(indexPurpose, obj.Namespace, obj.Name, string(raw)))}
		store.Reader = secretReader{head.Name: head, chunk.Name: chunk}

		var target []byte
		switch which % 6 {
		case 0:
			target = head.Data[indexKey]
			head.Data[indexKey] = splice(target, pos, cut, patch)
			patch = head.Data[indexKey]
		case 1:
			target = head.Data[macKey]
			head.Data[macKey] = splice(target, pos, cut, patch)
			patch = head.Data[macKey]
		case 2:
			target = chunk.Data[chunkKey]
			chunk.Data[chunkKey] = splice(target, pos, cut, patch)
			patch = chunk.Data[chunkKey]
		case 3:
			target = []byte(chunk.Labels[GenerationLabel])
			chunk.Labels[GenerationLabel] = string(splice(target, pos, cut, patch))
			patch = []byte(chunk.Labels[GenerationLabel])
		case 4:
			target = []byte(head.Type)
			head.Type = corev1.SecretType(splice(target, pos, cut, patch))
			patch = []byte(head.Type)
		case 5:
			// A whole forged snapshot, consistent in every digest, under
			// the genuine MAC.
			forged, err := encode(threeStages(string(patch)))
			if err != nil {
				t.Fatal(err)
			}
			target, patch = data, forged
			chunk.Data[chunkKey] = forged
			idx.Digest, idx.Size, idx.Chunks[0].Digest = digest(forged), len(forged), digest(forged)
			if head.Data[indexKey], err = json.Marshal(idx); err != nil {
				t.Fatal(err)
			}
		}

		got, err := store.Load(ctx, obj)
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("a snapshot changed without the key loads (change %d: %.80q to %.80q)", which%6, target, patch)
		}
		if bytes.Equal(target, patch) {
			if err != nil {
				t.Fatalf("an untouched snapshot does not load: %v", err)
			}
			return
		}
		// The MAC is hex, which also verifies in upper case: another
		// spelling of the genuine MAC may load the genuine snapshot.
		if err == nil && which%6 == 1 {
			return
		}
		if which%6 == 4 && !errors.Is(err, ErrForeign) || which%6 != 4 && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("a changed snapshot (change %d: %.80q to %.80q) is refused with %v, not as corrupt or foreign", which%6, target, patch, err)
		}
	})
}
