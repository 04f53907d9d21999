package snapshot

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestStageFindsByName(t *testing.T) {
	g := NewWithT(t)
	snap := &Snapshot{Stages: []Stage{{Name: "crds"}, {Name: "app", Revision: "main@sha1:1"}}}
	g.Expect(snap.Stage("app")).To(Equal(&snap.Stages[1]))
	g.Expect(snap.Stage("db")).To(BeNil())
	var none *Snapshot
	g.Expect(none.Stage("app")).To(BeNil())
}

func TestDecodeRefusesUnknownFormatVersions(t *testing.T) {
	g := NewWithT(t)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	_, _ = gz.Write([]byte(`{"version":2,"stages":[]}`))
	g.Expect(gz.Close()).To(Succeed())

	_, err := decode(buf.Bytes())
	g.Expect(err).To(MatchError(ContainSubstring("format version 2 is not supported")))

	_, err = decode([]byte(strings.Repeat("x", 10)))
	g.Expect(err).To(MatchError(ContainSubstring("decompressing snapshot")))
}

// Matches compares built objects, once labelled as applied, with a stage.
func TestStageMatchesBuiltObjectsOnceLabelled(t *testing.T) {
	g := NewWithT(t)
	label := func(objects ...*unstructured.Unstructured) {
		for _, o := range objects {
			o.SetLabels(map[string]string{"owner": "app"})
		}
	}
	applied := configMap("shop", "a", map[string]any{"v": "1"})
	label(applied)
	stage := &Stage{Name: "app", Objects: []*unstructured.Unstructured{applied}}

	same, err := stage.Matches([]*unstructured.Unstructured{configMap("shop", "a", map[string]any{"v": "1"})}, label)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(same).To(BeTrue())
	for name, built := range map[string][]*unstructured.Unstructured{
		"changed": {configMap("shop", "a", map[string]any{"v": "2"})},
		"more":    {configMap("shop", "a", map[string]any{"v": "1"}), configMap("shop", "b", nil)},
		"none":    nil,
	} {
		same, err := stage.Matches(built, label)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(same).To(BeFalse(), name)
	}
	unlabelled, _ := stage.Matches([]*unstructured.Unstructured{configMap("shop", "a", map[string]any{"v": "1"})}, func(...*unstructured.Unstructured) {})
	g.Expect(unlabelled).To(BeFalse(), "the labels are part of what is applied")
}
