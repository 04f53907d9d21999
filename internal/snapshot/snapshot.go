package snapshot

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Snapshot is what one successful rollout applied.
type Snapshot struct {
	// Revisions maps each source key to the revision that was applied
	// (status.lastAppliedRevisions).
	Revisions map[string]string
	// Revision is the combined revision of the rollout
	// (status.lastAppliedRevision).
	Revision string
	// Stages are the applied stages, in stage order.
	Stages []Stage
}

// Stage is what one stage of a successful rollout applied.
type Stage struct {
	// Name of the stage.
	Name string
	// Revision of the stage's source that was applied.
	Revision string
	// Objects exactly as applied, ownership labels included.
	Objects []*unstructured.Unstructured
}

// Stage returns the stage of that name, or nil.
func (s *Snapshot) Stage(name string) *Stage {
	if s == nil {
		return nil
	}
	for i := range s.Stages {
		if s.Stages[i].Name == name {
			return &s.Stages[i]
		}
	}
	return nil
}

// Matches tells whether built objects, once labelled as they are applied,
// are exactly the objects of the stage: the run would apply nothing new.
func (s *Stage) Matches(built []*unstructured.Unstructured, label func(...*unstructured.Unstructured)) (bool, error) {
	if len(built) != len(s.Objects) {
		return false, nil
	}
	for i := range built {
		b := built[i].DeepCopy()
		label(b)
		x, err := json.Marshal(b.Object)
		if err != nil {
			return false, err
		}
		y, err := json.Marshal(s.Objects[i].Object)
		if err != nil {
			return false, err
		}
		if !bytes.Equal(x, y) {
			return false, nil
		}
	}
	return true, nil
}

// formatVersion is the version of the stored document. Load refuses other
// versions rather than guessing, so a future format change cannot be misread
// as a (wrong) rollback target.
const formatVersion = 1

// MaxDecodedSize bounds the JSON document of a snapshot: Save refuses to
// store a larger one (the rollout stands, RollbackStoreFailed is reported)
// and Load stops decompressing past it, so memory stays bounded whatever
// the stored bytes claim.
const MaxDecodedSize = 64 << 20

// document is the stored form of a Snapshot.
type document struct {
	Version   int               `json:"version"`
	Revision  string            `json:"revision,omitempty"`
	Revisions map[string]string `json:"revisions,omitempty"`
	Stages    []stageDocument   `json:"stages"`
}

type stageDocument struct {
	Name     string `json:"name"`
	Revision string `json:"revision,omitempty"`
	// Objects are kept raw and decoded by the unstructured JSON scheme, so
	// integers come back as int64 and not float64: the objects must compare
	// equal to what was applied.
	Objects []json.RawMessage `json:"objects"`
}

// encode returns the gzip-compressed JSON document of snap.
func encode(snap *Snapshot) ([]byte, error) {
	doc := document{
		Version:   formatVersion,
		Revision:  snap.Revision,
		Revisions: snap.Revisions,
		Stages:    make([]stageDocument, 0, len(snap.Stages)),
	}
	for _, stage := range snap.Stages {
		sd := stageDocument{Name: stage.Name, Revision: stage.Revision, Objects: make([]json.RawMessage, 0, len(stage.Objects))}
		for _, obj := range stage.Objects {
			raw, err := obj.MarshalJSON()
			if err != nil {
				return nil, fmt.Errorf("encoding %s %s/%s of stage %s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), stage.Name, err)
			}
			sd.Objects = append(sd.Objects, raw)
		}
		doc.Stages = append(doc.Stages, sd)
	}

	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding snapshot: %w", err)
	}
	// Load refuses a document larger than this: one must never be stored.
	if len(raw) > MaxDecodedSize {
		return nil, fmt.Errorf("encoding snapshot: %d bytes of JSON exceed the limit of %d", len(raw), MaxDecodedSize)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	if _, err := gz.Write(raw); err != nil {
		return nil, fmt.Errorf("compressing snapshot: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("compressing snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// decode is the inverse of encode.
func decode(data []byte) (*Snapshot, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("decompressing snapshot: %w", err)
	}
	// The limit holds even for a document whose digests verify: a few
	// megabytes of gzip can expand to gigabytes.
	raw, err := io.ReadAll(io.LimitReader(gz, MaxDecodedSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing snapshot: %w", err)
	}
	if len(raw) > MaxDecodedSize {
		return nil, fmt.Errorf("decompressing snapshot: it expands to more than %d bytes", MaxDecodedSize)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decoding snapshot: %w", err)
	}
	if doc.Version != formatVersion {
		return nil, fmt.Errorf("snapshot format version %d is not supported (want %d)", doc.Version, formatVersion)
	}

	snap := &Snapshot{Revision: doc.Revision, Revisions: doc.Revisions, Stages: make([]Stage, 0, len(doc.Stages))}
	for _, sd := range doc.Stages {
		stage := Stage{Name: sd.Name, Revision: sd.Revision, Objects: make([]*unstructured.Unstructured, 0, len(sd.Objects))}
		for i, raw := range sd.Objects {
			obj := &unstructured.Unstructured{}
			if err := obj.UnmarshalJSON(raw); err != nil {
				return nil, fmt.Errorf("decoding object %d of stage %s: %w", i, sd.Name, err)
			}
			stage.Objects = append(stage.Objects, obj)
		}
		snap.Stages = append(snap.Stages, stage)
	}
	return snap, nil
}
