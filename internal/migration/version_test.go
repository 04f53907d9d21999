package migration

import (
	"slices"
	"testing"
)

func TestLess(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		want bool
	}{
		{"semver minor numerically", "1.2.0", "1.10.0", true},
		{"semver reverse", "1.10.0", "1.2.0", false},
		{"semver patch", "1.0.1", "1.0.2", true},
		{"prerelease before release", "1.0.0-rc.1", "1.0.0", true},
		{"release after prerelease", "1.0.0", "1.0.0-rc.1", false},
		{"prerelease identifiers numerically", "1.0.0-rc.2", "1.0.0-rc.10", true},
		{"alpha before beta", "1.0.0-alpha", "1.0.0-beta", true},
		{"v prefix on one side", "v1.2.0", "1.10.0", true},
		{"v prefix on both sides", "v2.0.0", "v10.0.0", true},
		{"v prefix and none are one version, ordered by string", "1.0.0", "v1.0.0", true},
		{"v prefix and none, reverse", "v1.0.0", "1.0.0", false},
		{"natural order digit runs", "2", "10", true},
		{"natural order reverse", "10", "2", false},
		{"natural order with text", "0002-add-index", "0010-drop-column", true},
		{"natural order text before digits differ", "m2-b", "m10-a", true},
		{"natural order text", "add-users", "drop-users", true},
		{"natural order prefix first", "step", "step1", true},
		{"natural order leading zeros by value", "007", "10", true},
		{"natural leading zeros tie broken by string", "007", "7", true},
		{"date versions", "20240101", "20250101", true},
		{"mixed: semver and not use natural order", "1.2.0", "1.10-hotfix", true},
		{"mixed: reverse", "1.10-hotfix", "1.2.0", false},
		{"mixed: non-semver text", "2.0.0", "10-legacy", true},
		{"equal", "1.0.0", "1.0.0", false},
		{"equal natural", "abc", "abc", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Less(tt.a, tt.b); got != tt.want {
				t.Errorf("Less(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
		})
	}
}

// TestLessSortsTotally checks that sorting with Less gives one order
// whatever the input order, including versions equal under semver.
func TestLessSortsTotally(t *testing.T) {
	want := []string{"0.9.0", "1.0.0-alpha", "1.0.0-rc.1", "1.0.0", "v1.0.0", "1.2.0", "v1.10.0", "2.0.0"}
	for _, in := range [][]string{
		slices.Clone(want),
		{"2.0.0", "v1.10.0", "1.2.0", "v1.0.0", "1.0.0", "1.0.0-rc.1", "1.0.0-alpha", "0.9.0"},
		{"v1.0.0", "2.0.0", "1.0.0-alpha", "1.0.0", "0.9.0", "v1.10.0", "1.0.0-rc.1", "1.2.0"},
	} {
		got := slices.Clone(in)
		slices.SortFunc(got, compare)
		if !slices.Equal(got, want) {
			t.Errorf("sorting %q gave %q, want %q", in, got, want)
		}
	}
}
