package migration

import (
	"cmp"
	"strings"

	"golang.org/x/mod/semver"
)

// Less reports whether version a sorts before version b. Two versions that
// both parse as semantic versions (with an optional leading "v", so "1.2.0"
// and "v1.2.0" are the same version) compare by semver precedence, which puts
// a prerelease before its release. Otherwise they compare in natural order:
// runs of digits compare as numbers ("2" < "10"), everything else byte by
// byte. Versions equal under these rules (such as "1.0.0" and "v1.0.0") are
// ordered by plain string comparison, so the order is total and a sort gives
// the same result whatever the input order.
//
// Mixing semantic and other versions in one stage is allowed by SPEC §6, but
// then the two rules can disagree (for "1.0.0-rc.1", "1.0.0" and "1.0.0-");
// keeping one scheme per stage avoids surprises.
func Less(a, b string) bool {
	return compare(a, b) < 0
}

func compare(a, b string) int {
	if sa, sb := semverOf(a), semverOf(b); sa != "" && sb != "" {
		if c := semver.Compare(sa, sb); c != 0 {
			return c
		}
	} else if c := natural(a, b); c != 0 {
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
