package migration

import (
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	fitnames "github.com/stageset/stageset-controller/internal/names"
)

func TestJobName(t *testing.T) {
	tests := []struct {
		name                     string
		stageset, stage, version string
		readable                 string
	}{
		{"plain", "app", "db", "1", "app-db-m-1"},
		{"dots become dashes", "app", "db", "1.2.0", "app-db-m-1-2-0"},
		{"upper case lowered", "app", "db", "V1.0.0-RC.1", "app-db-m-v1-0-0-rc-1"},
		{"invalid characters replaced", "app", "db", "2024_01_01+build/x", "app-db-m-2024-01-01-build-x"},
		{"trailing dashes trimmed", "app", "db", "1.0.", "app-db-m-1-0"},
		{"dotted stageset name", "team.app", "db", "3", "team-app-db-m-3"},
		{"cut before the hash", strings.Repeat("s", 55), "db", "1", strings.Repeat("s", 54)},
	}
	hash := regexp.MustCompile(`^(.*)-[0-9a-f]{8}$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := JobName(tt.stageset, tt.stage, tt.version)
			m := hash.FindStringSubmatch(got)
			if m == nil || m[1] != tt.readable {
				t.Errorf("JobName(%q, %q, %q) = %q, want %q and a hash", tt.stageset, tt.stage, tt.version, got, tt.readable)
			}
			if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
				t.Errorf("%q is not a DNS-1123 label: %v", got, errs)
			}
		})
	}
}

// Names that sanitise to the same text belong to different StageSets or
// stages: they must not share a Job, or one would wait on (and count) the
// other's migration.
func TestJobNameTellsTriplesApart(t *testing.T) {
	pairs := [][2][3]string{
		{{"a-b", "c", "1"}, {"a", "b-c", "1"}},
		{{"a", "b-m-1", "2"}, {"a-b-m", "1", "2"}},
		{{"app", "db", "1.0"}, {"app", "db", "1-0"}},
		{{"team.app", "db", "1"}, {"team-app", "db", "1"}},
	}
	for _, p := range pairs {
		a, b := JobName(p[0][0], p[0][1], p[0][2]), JobName(p[1][0], p[1][1], p[1][2])
		if a == b {
			t.Errorf("JobName%q = JobName%q = %q", p[0], p[1], a)
		}
	}
}

// A name too long for a Job is cut the way earlier versions cut it: a
// migration Job they started under it is still found.
func TestJobNameOfLongNamesIsUnchanged(t *testing.T) {
	long := strings.Repeat("a", 240) + ".b" + strings.Repeat("c", 11)
	if got, want := JobName(long, "db", "1.0"), strings.Repeat("a", 54)+"-a6fd122c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestJobNameLong(t *testing.T) {
	long := strings.Repeat("a", 60)
	names := map[string]string{}
	for _, triple := range [][3]string{
		{long, "db", "1.0.0"},
		{long, "db", "1.0.1"},
		{long, "web", "1.0.0"},
		{long + "b", "db", "1.0.0"},
		{long, "db", strings.Repeat("9", 100)},
		{long, "db", strings.Repeat("9", 100) + "8"},
		// Same sanitised name, different triples.
		{long + "-x", "db", "1"},
		{long, "x-db", "1"},
		{"app", "db", strings.Repeat("-", 70) + "x"},
	} {
		got := JobName(triple[0], triple[1], triple[2])
		if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
			t.Errorf("JobName%q = %q is not a DNS-1123 label: %v", triple, got, errs)
		}
		if again := JobName(triple[0], triple[1], triple[2]); again != got {
			t.Errorf("JobName%q is not deterministic: %q then %q", triple, got, again)
		}
		if other, dup := names[got]; dup {
			t.Errorf("JobName%q = %q, the same as for %s", triple, got, other)
		}
		names[got] = strings.Join(triple[:], ",")
	}
	got := JobName(long, "db", "1.0.0")
	if len(got) != validation.DNS1123LabelMaxLength || !strings.HasPrefix(got, strings.Repeat("a", 54)) {
		t.Errorf("long name %q should keep a readable prefix and use all 63 characters", got)
	}
}

func TestLedgerName(t *testing.T) {
	if got := ledgerName("app"); got != "app-migrations" {
		t.Errorf("ledgerName(app) = %q", got)
	}
	long := strings.Repeat("a.", 126) + "a"
	a, b := ledgerName(long), ledgerName(long[:len(long)-1]+"b")
	for _, name := range []string{a, b} {
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 || !strings.HasSuffix(name, "-migrations") {
			t.Errorf("ledger name %q: %v", name, errs)
		}
	}
	if a == b {
		t.Errorf("long StageSet names that differ share ledger %q", a)
	}
	// Existing ledgers are found by name: the cut must not change.
	if got, want := ledgerName(strings.Repeat("a", 240)+".b"+strings.Repeat("c", 11)), strings.Repeat("a", 233)+"-1832a1be-migrations"; got != want {
		t.Errorf("ledgerName changed: got %q, want %q", got, want)
	}
	if errs := validation.IsValidLabelValue(fitnames.LabelValue(long)); len(errs) > 0 {
		t.Errorf("name label value: %v", errs)
	}
}

func TestDataKey(t *testing.T) {
	keys := map[string]bool{}
	for _, pair := range [][2]string{
		{"db", "1.0.0"},
		{"db", "1.0.0+build"},
		{"db", "1.0.0-build"},
		{"db", "1/0"},
		{"db", "1:0"},
		{"db-x", "1"},
		{"db", "x_1"},
		{"db", strings.Repeat("v", 300)},
		{"db", strings.Repeat("v", 300) + "w"},
	} {
		key := dataKey(pair[0], pair[1])
		if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
			t.Errorf("dataKey%q = %q: %v", pair, key, errs)
		}
		if keys[key] {
			t.Errorf("dataKey%q = %q is not unique", pair, key)
		}
		keys[key] = true
	}
	if got := dataKey("db", "1.0.0"); got != "db_1.0.0" {
		t.Errorf("a valid pair should keep a readable key, got %q", got)
	}
}
