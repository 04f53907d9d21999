package migration

import (
	"cmp"
	"strings"

	"golang.org/x/mod/semver"
)

// Less reports whether version a sorts before version b when a stage has
// only these two migrations: see order.
func Less(a, b string) bool {
	return compare(a, b) < 0
}

// compare is order for the two versions a and b.
func compare(a, b string) int {
	return order([]string{a, b})(a, b)
}

// order returns the comparison that sorts the migration versions of one
// stage. When every version parses as a semantic version (with an optional
// leading "v", so "1.2.0" and "v1.2.0" are the same version), they compare
// by semver precedence, which puts a prerelease before its release.
// Otherwise all of them compare in natural order: runs of digits compare as
// numbers ("2" < "10"), everything else byte by byte. Versions equal under
// the rule (such as "1.0.0" and "v1.0.0") are ordered by plain string
// comparison, so the order is total and a sort gives the same result
// whatever the input order.
//
// The scheme is chosen for the whole stage, not for each pair: mixing the
// two rules pair by pair is not transitive ("1.0.0-rc.1" < "1.0.0" by
// semver, "1.0.0" < "1.0.0-" and "1.0.0-" < "1.0.0-rc.1" by natural order),
// and the run order of such a stage would follow the order the build lists
// the Jobs in. In a stage that mixes schemes a prerelease therefore sorts
// after its release, as natural order has it.
func order(versions []string) func(a, b string) int {
	for _, v := range versions {
		if semverOf(v) == "" {
			return byNatural
		}
	}
	return bySemver
}

func bySemver(a, b string) int {
	if c := semver.Compare(semverOf(a), semverOf(b)); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

func byNatural(a, b string) int {
	if c := natural(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// semverOf returns v in the "v"-prefixed form golang.org/x/mod/semver
// parses, or "" when v is not a semantic version. That parser also takes the
// shorthands "v1" and "v1.2" (as v1.0.0 and v1.2.0), which order the same as
// natural order would, so accepting them is harmless.
func semverOf(v string) string {
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	if !semver.IsValid(v) {
		return ""
	}
	return v
}

// natural compares a and b in natural order: digit runs by numeric value
// (leading zeros ignored), other bytes by value, a prefix before the longer
// string.
func natural(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			var na, nb string
			na, a = digitRun(a)
			nb, b = digitRun(b)
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digitRun splits s after its leading digits and returns those digits
// without leading zeros, and the rest of s.
func digitRun(s string) (number, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return strings.TrimLeft(s[:i], "0"), s[i:]
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
