package main

import (
	"testing"

	. "github.com/onsi/gomega"

	"github.com/stageset/stageset-controller/internal/build"
	"github.com/stageset/stageset-controller/internal/source"
)

// --http-retry reaches the artifact Fetcher as kustomize-controller's does:
// default 9, 0 disables retries, negative is refused.
func TestHTTPRetryFlag(t *testing.T) {
	g := NewWithT(t)
	g.Expect(parseFlags(t).fetchRetries()).To(Equal(source.DefaultRetries))
	g.Expect(source.DefaultRetries).To(Equal(9))
	g.Expect(parseFlags(t, "--http-retry=2").fetchRetries()).To(Equal(2))
	g.Expect(parseFlags(t, "--http-retry=0").fetchRetries()).To(Equal(-1), "no retries, not the default")
	g.Expect(parseFlags(t, "--http-retry=-1").validate()).To(MatchError(ContainSubstring("--http-retry must not be negative")))
}

// --max-objects-per-stage reaches the reconciler's builds; 0 turns the limit
// off and a negative value is refused.
func TestMaxObjectsPerStageFlag(t *testing.T) {
	g := NewWithT(t)
	g.Expect(parseFlags(t).maxObjectsPerStage).To(Equal(build.DefaultMaxObjects))
	g.Expect(parseFlags(t, "--max-objects-per-stage=0").validate()).To(Succeed())
	g.Expect(parseFlags(t, "--max-objects-per-stage=-1").validate()).To(MatchError(ContainSubstring("--max-objects-per-stage must not be negative")))
}
