package names

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// long is a StageSet name of 253 characters, the longest Kubernetes allows.
var long = strings.Repeat("a", 240) + ".b" + strings.Repeat("c", 11)

// The outputs below were made by the copies this package replaced (the
// snapshot Secret names and label value, the ledger Secret name). Existing
// installs hold objects under them: they must not change.
func TestOutputsOfEarlierVersionsAreKept(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"short label value", LabelValue("shop"), "shop"},
		{"63-character label value", LabelValue(strings.Repeat("x", 63)), strings.Repeat("x", 63)},
		{"long label value", LabelValue(long), strings.Repeat("a", 52) + "-1832a1bee9"},
		{"snapshot head", Fit(long, "-snapshot", 253), strings.Repeat("a", 233) + "-1832a1bee9-snapshot"},
		{"snapshot chunk", Fit(long, "-snapshot-3-1", 253), strings.Repeat("a", 229) + "-1832a1bee9-snapshot-3-1"},
		{"ledger", FitHash(long, "-migrations", 253, Hash(8, long)), strings.Repeat("a", 233) + "-1832a1be-migrations"},
		{"short ledger", FitHash("app", "-migrations", 253, Hash(8, "app")), "app-migrations"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestLabelValuesAreValidAndDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, s := range []string{
		"shop", strings.Repeat("x", 63), strings.Repeat("x", 64), long, long[:252] + "d",
		// The cut lands on a dot or a dash: neither may end up before the hash.
		strings.Repeat("a", 52) + "." + strings.Repeat("b", 20),
		strings.Repeat("a", 51) + "-." + strings.Repeat("b", 20),
	} {
		v := LabelValue(s)
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("LabelValue(%q) = %q: %v", s, v, errs)
		}
		if other, dup := seen[v]; dup {
			t.Errorf("LabelValue(%q) = LabelValue(%q) = %q", s, other, v)
		}
		seen[v] = s
	}
}

func TestJoinAlwaysAddsTheHash(t *testing.T) {
	if got := Join("smoke", "12345678", "", 63); got != "smoke-12345678" {
		t.Errorf("got %q", got)
	}
	got := Join(strings.Repeat("a", 53)+"."+strings.Repeat("b", 20), "12345678", "", 63)
	if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
		t.Errorf("%q: %v", got, errs)
	}
	if !strings.HasSuffix(got, "a-12345678") {
		t.Errorf("the cut should drop the dot before the hash: %q", got)
	}
}

func TestHashSeparatesParts(t *testing.T) {
	if Hash(8, "a-b", "c") == Hash(8, "a", "b-c") {
		t.Error(`("a-b", "c") and ("a", "b-c") hash the same`)
	}
	if len(Hash(10, "x")) != 10 {
		t.Error("Hash ignores its length")
	}
}
