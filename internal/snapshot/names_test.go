package snapshot

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/stageset/stageset-controller/internal/names"
)

func TestNamesFitTheirFields(t *testing.T) {
	long := strings.Repeat("a", 240) + ".b" + strings.Repeat("c", 11)
	cases := []struct {
		name      string
		stageset  string
		wantHead  string
		wantChunk string
		wantLabel string
	}{
		{"short names are kept", "shop", "shop-snapshot", "shop-snapshot-3-1", "shop"},
		{"exactly 63 characters is a valid label value", strings.Repeat("x", 63), strings.Repeat("x", 63) + "-snapshot", "", strings.Repeat("x", 63)},
		{"a name of 253 characters is cut and hashed", long, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head, chunk, label := headName(tc.stageset), chunkName(tc.stageset, 3, 1), names.LabelValue(tc.stageset)
			for _, n := range []string{head, chunk} {
				if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
					t.Errorf("%q is not a Secret name: %v", n, errs)
				}
			}
			if errs := validation.IsValidLabelValue(label); len(errs) > 0 {
				t.Errorf("%q is not a label value: %v", label, errs)
			}
			if !strings.HasSuffix(chunk, "-snapshot-3-1") {
				t.Errorf("chunk name %q lost its suffix", chunk)
			}
			for got, want := range map[string]string{head: tc.wantHead, chunk: tc.wantChunk, label: tc.wantLabel} {
				if want != "" && got != want {
					t.Errorf("got %q, want %q", got, want)
				}
			}
		})
	}
}

func TestCutNamesStayDistinct(t *testing.T) {
	// Two names that differ only past the cut must not share Secrets.
	a := strings.Repeat("a", 250) + "-x"
	b := strings.Repeat("a", 250) + "-y"
	if headName(a) == headName(b) || chunkName(a, 1, 0) == chunkName(b, 1, 0) || names.LabelValue(a) == names.LabelValue(b) {
		t.Fatalf("names collide: %q, %q", headName(a), headName(b))
	}
	// The cut never leaves a dot or dash in front of the hash.
	c := strings.Repeat("a", 52) + "." + strings.Repeat("b", 20)
	if v := names.LabelValue(c); strings.Contains(v, ".-") || len(v) > validation.LabelValueMaxLength {
		t.Fatalf("bad label value %q", v)
	}
}
