package snapshot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/integrity"
	"github.com/stageset/stageset-controller/internal/names"
)

const (
	// SecretType is the type of every snapshot Secret.
	SecretType corev1.SecretType = stagesetv1.GroupName + "/snapshot"

	// GenerationLabel holds the snapshot generation a chunk Secret belongs
	// to. The head Secret has no such label.
	GenerationLabel = stagesetv1.GroupName + "/snapshot-generation"

	// MaxChunkSize is the most compressed bytes one chunk Secret holds. The
	// API server refuses Secrets of more than 1 MiB of data; the margin
	// keeps clear of that limit and of etcd's request size.
	MaxChunkSize = 900 * 1024

	// MaxChunks bounds the chunks of one snapshot, so the compressed
	// document is at most MaxChunks*MaxChunkSize bytes (about 56 MiB).
	MaxChunks = 64

	// WriterAnnotation holds the token proving that the Store wrote a
	// Secret for a StageSet of this namespace and name: such a Secret may
	// be overwritten or deleted even when its owner is gone.
	WriterAnnotation = stagesetv1.GroupName + "/snapshot-writer"

	// indexKey is the data key of the head Secret holding the index.
	indexKey = "index.json"
	// macKey is the data key of the head Secret holding the MAC of the index.
	macKey = "index.mac"
	// chunkKey is the data key of a chunk Secret holding its bytes.
	chunkKey = "data"

	// Purposes of the MACs, so that one made for a ledger record or a
	// writer token never passes for an index.
	indexPurpose  = "stageset.io/snapshot-index/v1"
	writerPurpose = "stageset.io/snapshot-writer/v1"
)

var (
	// ErrCorrupt is wrapped by Load errors about a snapshot that exists but
	// cannot be trusted: a missing, foreign or altered chunk, or a bad index.
	ErrCorrupt = errors.New("snapshot is corrupt")

	// ErrUntrusted is wrapped by Load errors about an index whose MAC does
	// not verify: not written by this controller for this StageSet. It
	// wraps ErrCorrupt.
	ErrUntrusted = fmt.Errorf("%w: %w", ErrCorrupt, integrity.ErrUnverified)

	// ErrForeign is wrapped by errors about a Secret of a snapshot's name
	// that the Store did not write (another type, another owner): it is
	// neither read nor overwritten.
	ErrForeign = errors.New("secret is not a snapshot of this StageSet")
)

// Store reads and writes the snapshots of StageSets through Client, the
// controller's own client (not an impersonated one), which needs get, list,
// create, update and delete on Secrets.
//
// A snapshot is stored as its gzip-compressed JSON, cut into chunk Secrets
// named <stageset>-snapshot-<generation>-<chunk>, plus one head Secret
// <stageset>-snapshot whose index names the chunks of the last good
// generation with their sha256 digests. Save writes all chunks before it
// points the head at them, so a reader sees either the old or the new
// snapshot, never a mix; the previous generation is kept until the next
// Save, for readers that read the head just before it moved.
type Store struct {
	// Client writes, and reads unless Reader is set.
	Client client.Client
	// Reader, when set, serves the reads instead of Client. Give it an
	// uncached reader (the manager's API reader) so that snapshot Secrets,
	// which may be megabytes, are not held in the informer cache.
	Reader client.Reader
	// Key authenticates the index, and through its digests the chunks: the
	// Secrets live where any Secret writer of the namespace can change
	// them, so only a MAC of the controller's key makes a snapshot one the
	// controller may apply. Required.
	Key *integrity.Key
}

// index is the content of the head Secret: which generation is the last
// good one and how to reassemble and verify it.
//
// The index is authenticated by a MAC over the namespace and name of the
// StageSet and the index itself, which holds the StageSet's UID and the
// generation: a snapshot cannot be moved to another StageSet, nor to a
// later StageSet of the same name. (A Secret writer can still put back an
// older genuine generation of this StageSet, if they kept its Secrets: that
// replays what this StageSet applied before, nothing more.)
type index struct {
	Generation int64     `json:"generation"`
	UID        types.UID `json:"uid"`
	// Digest is "sha256:<hex>" of the whole compressed document.
	Digest string `json:"digest"`
	// Size is the length of the compressed document.
	Size   int        `json:"size"`
	Chunks []chunkRef `json:"chunks"`
}

type chunkRef struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// Save writes snap as the last good snapshot of obj, owned by obj so the
// Secrets are garbage-collected with it.
func (s *Store) Save(ctx context.Context, obj *stagesetv1.StageSet, snap *Snapshot) error {
	if snap == nil {
		return errors.New("saving snapshot: no snapshot given")
	}
	if obj.UID == "" {
		return fmt.Errorf("saving snapshot of %s/%s: the StageSet has no UID", obj.Namespace, obj.Name)
	}
	if s.Key == nil {
		return fmt.Errorf("saving snapshot of %s/%s: the store has no integrity key", obj.Namespace, obj.Name)
	}
	data, err := encode(snap)
	if err != nil {
		return err
	}
	if len(data) > MaxChunks*MaxChunkSize {
		return fmt.Errorf("saving snapshot of %s/%s: %d compressed bytes exceed the limit of %d", obj.Namespace, obj.Name, len(data), MaxChunks*MaxChunkSize)
	}

	head, current, err := s.readHead(ctx, obj)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("saving snapshot of %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	// A head with a bad index is overwritten, if the Store wrote it: the
	// next good snapshot is the only way out of that state.
	if head != nil && !s.writable(head, obj) {
		return fmt.Errorf("saving snapshot of %s/%s: %w: refusing to overwrite Secret %s, which this controller did not write for this StageSet",
			obj.Namespace, obj.Name, ErrForeign, head.Name)
	}
	var previous int64
	if current != nil {
		previous = current.Generation
	}
	next := previous + 1

	// Chunks left by a Save that failed before moving the head may share
	// names with the ones about to be written; removing them first also
	// removes surplus chunks when the new snapshot is smaller. The chunks
	// of generation previous-1 are kept for readers until the head moves,
	// then removed without listing again.
	older, err := s.prune(ctx, obj, previous, previous-1)
	if err != nil {
		return fmt.Errorf("saving snapshot of %s/%s: %w", obj.Namespace, obj.Name, err)
	}

	idx := index{Generation: next, UID: obj.UID, Digest: digest(data), Size: len(data)}
	for i, start := 0, 0; start < len(data); i, start = i+1, start+MaxChunkSize {
		part := data[start:min(start+MaxChunkSize, len(data))]
		name := chunkName(obj.Name, next, i)
		if err := s.writeChunk(ctx, obj, name, next, part); err != nil {
			return fmt.Errorf("saving snapshot of %s/%s: writing chunk %s: %w", obj.Namespace, obj.Name, name, err)
		}
		idx.Chunks = append(idx.Chunks, chunkRef{Name: name, Digest: digest(part)})
	}

	if err := s.writeHead(ctx, obj, head, idx); err != nil {
		return fmt.Errorf("saving snapshot of %s/%s: moving %s to generation %d: %w", obj.Namespace, obj.Name, headName(obj.Name), next, err)
	}

	if err := s.deleteChunks(ctx, older[previous-1]); err != nil {
		return fmt.Errorf("snapshot generation %d of %s/%s is stored, but removing older generations failed: %w", next, obj.Namespace, obj.Name, err)
	}
	return nil
}

// Load returns the last good snapshot of obj, or (nil, nil) when there is
// none. The index must carry a valid MAC for obj (else the error wraps
// ErrUntrusted); every chunk and the whole document are checked against the
// digests of the index; any mismatch or missing chunk is an error wrapping
// ErrCorrupt, never a partial snapshot.
func (s *Store) Load(ctx context.Context, obj *stagesetv1.StageSet) (*Snapshot, error) {
	if s.Key == nil {
		return nil, fmt.Errorf("loading snapshot of %s/%s: the store has no integrity key", obj.Namespace, obj.Name)
	}
	_, idx, err := s.readHead(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("loading snapshot of %s/%s: %w", obj.Namespace, obj.Name, err)
	}
	if idx == nil {
		return nil, nil
	}

	// readHead bounded idx.Size by MaxChunks*MaxChunkSize; memory grows
	// with the chunks actually read, not with what the index claims.
	data := make([]byte, 0, min(idx.Size, MaxChunkSize))
	for i, ref := range idx.Chunks {
		part, err := s.readChunk(ctx, obj.Namespace, ref, idx.Generation)
		if err == nil && len(data)+len(part) > idx.Size {
			err = fmt.Errorf("%w: the chunks exceed the size %d of the index", ErrCorrupt, idx.Size)
		}
		if err != nil {
			return nil, fmt.Errorf("loading snapshot generation %d of %s/%s: chunk %d of %d: %w",
				idx.Generation, obj.Namespace, obj.Name, i+1, len(idx.Chunks), err)
		}
		data = append(data, part...)
	}
	if len(data) != idx.Size || digest(data) != idx.Digest {
		return nil, fmt.Errorf("loading snapshot generation %d of %s/%s: %w: the chunks do not add up to digest %s",
			idx.Generation, obj.Namespace, obj.Name, ErrCorrupt, idx.Digest)
	}
	snap, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("loading snapshot generation %d of %s/%s: %w: %w", idx.Generation, obj.Namespace, obj.Name, ErrCorrupt, err)
	}
	return snap, nil
}

func (s *Store) reader() client.Reader {
	if s.Reader != nil {
		return s.Reader
	}
	return s.Client
}

// readHead returns the head Secret of obj (nil when absent) and its
// verified index. The index is nil when there is no head or the head
// belongs to an earlier StageSet of the same name, whose snapshot must not
// be rolled back to.
func (s *Store) readHead(ctx context.Context, obj *stagesetv1.StageSet) (*corev1.Secret, *index, error) {
	head := &corev1.Secret{}
	err := s.reader().Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: headName(obj.Name)}, head)
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", headName(obj.Name), err)
	}
	if head.Type != SecretType {
		return head, nil, fmt.Errorf("%w: Secret %s has type %q, not %q", ErrForeign, head.Name, head.Type, SecretType)
	}
	raw := head.Data[indexKey]
	if !s.Key.Verify(string(head.Data[macKey]), indexPurpose, obj.Namespace, obj.Name, string(raw)) {
		return head, nil, fmt.Errorf("%w: the index in Secret %s carries no valid MAC of this controller for StageSet %s/%s",
			ErrUntrusted, head.Name, obj.Namespace, obj.Name)
	}
	idx := &index{}
	if err := json.Unmarshal(raw, idx); err != nil {
		return head, nil, fmt.Errorf("%w: index of %s: %w", ErrCorrupt, head.Name, err)
	}
	if idx.UID != obj.UID {
		return head, nil, nil
	}
	if err := idx.check(); err != nil {
		return head, nil, fmt.Errorf("%w: index of %s: %w", ErrCorrupt, head.Name, err)
	}
	return head, idx, nil
}

// check refuses an index whose sizes could not come from Save, before Load
// allocates anything by them.
func (idx *index) check() error {
	n := len(idx.Chunks)
	switch {
	case idx.Generation < 1 || n == 0:
		return errors.New("it names no chunks")
	case n > MaxChunks:
		return fmt.Errorf("it names %d chunks, more than %d", n, MaxChunks)
	case idx.Size <= (n-1)*MaxChunkSize || idx.Size > n*MaxChunkSize:
		return fmt.Errorf("its size %d does not fit %d chunks of at most %d bytes", idx.Size, n, MaxChunkSize)
	}
	return nil
}

// writeHead points the head at idx. Updating an existing head carries the
// resourceVersion it was read at, so two concurrent Saves cannot both win.
func (s *Store) writeHead(ctx context.Context, obj *stagesetv1.StageSet, head *corev1.Secret, idx index) error {
	raw, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if head == nil {
		head = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: headName(obj.Name)}, Type: SecretType}
	}
	s.setMeta(head, obj, nil)
	mac := s.Key.Sum(indexPurpose, obj.Namespace, obj.Name, string(raw))
	head.Data = map[string][]byte{indexKey: raw, macKey: []byte(mac)}
	if head.ResourceVersion == "" {
		return s.Client.Create(ctx, head)
	}
	return s.Client.Update(ctx, head)
}

// writeChunk creates a chunk Secret, or overwrites one of the same name
// that the Store wrote.
func (s *Store) writeChunk(ctx context.Context, obj *stagesetv1.StageSet, name string, generation int64, part []byte) error {
	chunk := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: obj.Namespace, Name: name}, Type: SecretType}
	s.setMeta(chunk, obj, &generation)
	chunk.Data = map[string][]byte{chunkKey: part}
	err := s.Client.Create(ctx, chunk)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	existing := &corev1.Secret{}
	if err := s.reader().Get(ctx, client.ObjectKeyFromObject(chunk), existing); err != nil {
		return err
	}
	if !s.writable(existing, obj) {
		return fmt.Errorf("%w: refusing to overwrite Secret %s, which this controller did not write for this StageSet", ErrForeign, name)
	}
	s.setMeta(existing, obj, &generation)
	existing.Data = chunk.Data
	return s.Client.Update(ctx, existing)
}

// readChunk returns the bytes of one chunk after checking that it belongs to
// the generation and matches its digest.
func (s *Store) readChunk(ctx context.Context, namespace string, ref chunkRef, generation int64) ([]byte, error) {
	chunk := &corev1.Secret{}
	err := s.reader().Get(ctx, client.ObjectKey{Namespace: namespace, Name: ref.Name}, chunk)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: Secret %s is missing", ErrCorrupt, ref.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s: %w", ref.Name, err)
	}
	if chunk.Type != SecretType || chunk.Labels[GenerationLabel] != strconv.FormatInt(generation, 10) {
		return nil, fmt.Errorf("%w: Secret %s is not part of generation %d", ErrCorrupt, ref.Name, generation)
	}
	part := chunk.Data[chunkKey]
	if len(part) > MaxChunkSize {
		return nil, fmt.Errorf("%w: Secret %s holds %d bytes, more than a chunk", ErrCorrupt, ref.Name, len(part))
	}
	if got := digest(part); got != ref.Digest {
		return nil, fmt.Errorf("%w: Secret %s has digest %s, want %s", ErrCorrupt, ref.Name, got, ref.Digest)
	}
	return part, nil
}

// prune deletes the chunk Secrets of obj whose generation is not in keep,
// and returns the ones it kept by generation.
//
// It lists metadata only, of Secrets of the snapshot type (a field selector
// the API server applies): the labels it selects by can be set by anyone
// who writes Secrets in the namespace, who must not make every Save load
// their data.
func (s *Store) prune(ctx context.Context, obj *stagesetv1.StageSet, keep ...int64) (map[int64][]metav1.PartialObjectMetadata, error) {
	var chunks metav1.PartialObjectMetadataList
	chunks.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	err := s.reader().List(ctx, &chunks,
		client.InNamespace(obj.Namespace),
		client.MatchingLabels{stagesetv1.NameLabel: names.LabelValue(obj.Name)},
		client.HasLabels{GenerationLabel},
		client.MatchingFields{"type": string(SecretType)},
	)
	if err != nil {
		return nil, fmt.Errorf("listing snapshot chunks: %w", err)
	}
	kept := map[int64][]metav1.PartialObjectMetadata{}
	var stale []metav1.PartialObjectMetadata
	for _, chunk := range chunks.Items {
		if !s.writableMeta(&chunk.ObjectMeta, obj) {
			continue
		}
		generation, err := strconv.ParseInt(chunk.Labels[GenerationLabel], 10, 64)
		if err == nil && slices.Contains(keep, generation) {
			kept[generation] = append(kept[generation], chunk)
			continue
		}
		stale = append(stale, chunk)
	}
	return kept, s.deleteChunks(ctx, stale)
}

// deleteChunks deletes chunk Secrets that prune judged the Store's.
func (s *Store) deleteChunks(ctx context.Context, chunks []metav1.PartialObjectMetadata) error {
	var errs []error
	for _, chunk := range chunks {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: chunk.Namespace, Name: chunk.Name}}
		// The precondition deletes the Secret that was judged, not one
		// created again under its name meanwhile.
		if err := s.Client.Delete(ctx, secret, client.Preconditions{UID: &chunk.UID}); client.IgnoreNotFound(err) != nil {
			errs = append(errs, fmt.Errorf("deleting %s: %w", chunk.Name, err))
		}
	}
	return errors.Join(errs...)
}

// digest returns "sha256:<hex>" of data.
func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}
