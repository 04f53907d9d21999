package migration

import (
	"slices"
	"testing"

	"golang.org/x/mod/semver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestSplitRunsMixedVersionsInOneOrder checks that a stage mixing semantic
// and other versions runs its migrations in one order whatever order the
// build lists the Jobs in. Compared pair by pair, these three make a cycle:
// 1.0.0-rc.1 < 1.0.0 by semver, 1.0.0 < 1.0.0-rc.01 < 1.0.0-rc.1 by natural
// order (rc.01 is no semantic version: a leading zero).
func TestSplitRunsMixedVersionsInOneOrder(t *testing.T) {
	want := []string{"1.0.0", "1.0.0-rc.01", "1.0.0-rc.1"}
	for _, in := range [][]string{
		{"1.0.0-rc.1", "1.0.0", "1.0.0-rc.01"}, {"1.0.0-rc.1", "1.0.0-rc.01", "1.0.0"}, {"1.0.0", "1.0.0-rc.1", "1.0.0-rc.01"},
		{"1.0.0", "1.0.0-rc.01", "1.0.0-rc.1"}, {"1.0.0-rc.01", "1.0.0", "1.0.0-rc.1"}, {"1.0.0-rc.01", "1.0.0-rc.1", "1.0.0"},
	} {
		var objects []*unstructured.Unstructured
		for i, v := range in {
			objects = append(objects, job(string(rune('a'+i)), v))
		}
		migrations, _, err := Split(objects)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range migrations {
			got = append(got, m.Version)
		}
		if !slices.Equal(got, want) {
			t.Errorf("the build order %q runs %q, want %q", in, got, want)
		}
	}
}

// FuzzVersionOrder checks that the order migrations run in is a strict weak
// order on any three versions: irreflexive, antisymmetric, transitive, equal
// only for equal strings (so a sort gives one result whatever the input
// order), and semver precedence wherever every version is a semantic
// version. The versions come from annotations anyone who writes the source
// can set.
func FuzzVersionOrder(f *testing.F) {
	for _, seed := range [][3]string{
		{"1.0.0-rc.1", "1.0.0", "1.0.0-"},
		{"1.0.0-rc.1", "1.0.0", "1.0.0-rc.01"},
		{"1.2.0", "1.10.0", "v1.2.0"},
		{"v1", "v1.0", "1.0.0"},
		{"2", "10", "007"},
		{"0002-add-index", "0010-drop-column", "10"},
		{"1.0.0+build", "1.0.0", "1.0.0-alpha"},
		{"1.0.0-alpha.1", "1.0.0-alpha.a", "1.0.0-alpha.-"},
		{"", "0", "00"},
		{"1.2.0", "1.10-hotfix", "1.2"},
		{"99999999999999999999", "100000000000000000000", "1.0.0"},
	} {
		f.Add(seed[0], seed[1], seed[2])
	}
	f.Fuzz(func(t *testing.T, a, b, c string) {
		versions := []string{a, b, c}
		cmp := order(versions)
		for _, x := range versions {
			if cmp(x, x) != 0 {
				t.Fatalf("%q compares unequal to itself", x)
			}
			for _, y := range versions {
				xy, yx := cmp(x, y), cmp(y, x)
				if sign(xy) != -sign(yx) {
					t.Fatalf("not antisymmetric: compare(%q, %q) = %d, compare(%q, %q) = %d", x, y, xy, y, x, yx)
				}
				if (xy == 0) != (x == y) {
					t.Fatalf("compare(%q, %q) = %d: only equal strings may compare equal", x, y, xy)
				}
				for _, z := range versions {
					if cmp(x, y) < 0 && cmp(y, z) < 0 && cmp(x, z) >= 0 {
						t.Fatalf("not transitive: %q < %q < %q but not %q < %q", x, y, z, x, z)
					}
				}
			}
		}
		// Semantic versions compare by precedence: the parse decides.
		if sa, sb := semverOf(a), semverOf(b); sa != "" && sb != "" && semverOf(c) != "" {
			if p := semver.Compare(sa, sb); p != 0 && sign(cmp(a, b)) != p {
				t.Fatalf("%q and %q are semantic versions of precedence %d, but compare gives %d", a, b, p, cmp(a, b))
			}
		}
		// One sorted order whatever the input order.
		want := slices.Clone(versions)
		slices.SortFunc(want, cmp)
		for _, perm := range [][]string{{a, c, b}, {b, a, c}, {b, c, a}, {c, a, b}, {c, b, a}} {
			slices.SortFunc(perm, order(perm))
			if !slices.Equal(perm, want) {
				t.Fatalf("sorting gives %q or %q depending on the input order", want, perm)
			}
		}
	})
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
