package snapshot

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
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
