// Package names fits the names and label values the controller derives from
// user-chosen names into the lengths Kubernetes allows, with a hash standing
// in for what is cut so that different inputs keep different outputs.
//
// Every shortened name and label value of the controller goes through this
// package: the Secrets of snapshots and of the migration ledger, the Jobs of
// migrations and job actions, and the ownership labels. Outputs that were
// stored by earlier versions (Secret names, label values used in selectors)
// must not change, so the hash algorithm (SHA-256, hex) and each caller's
// hash length are part of the contract: see the tests.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// HashLength is the number of hex digits of the hash Fit and LabelValue add:
// 40 bits, so two names that share a long prefix still differ.
const HashLength = 10

// Hash returns the first length hex digits of the SHA-256 of parts joined
// with a NUL byte, which no Kubernetes name holds, so that ("a-b", "c") and
// ("a", "b-c") hash differently.
func Hash(length int, parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:length]
}

// Fit returns base+suffix when it is at most limit characters long.
// Otherwise base is cut and HashLength hex digits of the hash of base are put
// between it and suffix (see Join), keeping the result unique and at most
// limit long.
func Fit(base, suffix string, limit int) string {
	return FitHash(base, suffix, limit, Hash(HashLength, base))
}

// FitHash is Fit with the hash given: for names whose hash covers more than
// base, or whose stored names have a shorter hash.
func FitHash(base, suffix string, limit int, hash string) string {
	if len(base)+len(suffix) <= limit {
		return base + suffix
	}
	return Join(base, hash, suffix, limit)
}

// Join returns base, '-', hash and suffix, with base cut so that the whole
// is at most limit characters long. A cut base loses its trailing '-', '.'
// and '_', so the result stays a DNS-1123 name or a label value when base
// was one.
func Join(base, hash, suffix string, limit int) string {
	if keep := limit - len(suffix) - len(hash) - 1; len(base) > keep {
		base = strings.TrimRight(base[:max(keep, 0)], "-._")
	}
	return base + "-" + hash + suffix
}

// LabelValue returns s when it fits in a label value (63 characters), else s
// cut and suffixed with '-' and a hash of s. The values of the ownership
// labels, which are StageSet names of up to 253 characters, go through it; a
// value of 63 characters or fewer is returned unchanged, so existing labels
// keep selecting the objects they selected.
func LabelValue(s string) string {
	return Fit(s, "", validation.LabelValueMaxLength)
}
