package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// hashLength is the number of hex digits of the name hash that replaces the
// cut-off tail of a name too long for its field: 40 bits, so two StageSets
// whose names share a long prefix still get different Secrets.
const hashLength = 10

// headName returns the fixed name of the Secret that points at the last
// good generation of the StageSet called name.
func headName(name string) string {
	return fit(name, "-snapshot", validation.DNS1123SubdomainMaxLength)
}

// chunkName returns the name of chunk i of a generation. Names are
// deterministic so a retried Save overwrites what a failed one left behind.
func chunkName(name string, generation int64, i int) string {
	return fit(name, fmt.Sprintf("-snapshot-%d-%d", generation, i), validation.DNS1123SubdomainMaxLength)
}

// nameLabelValue returns the value of the name label on snapshot Secrets. A
// StageSet name may be a 253-character DNS subdomain while a label value
// holds at most 63 characters.
func nameLabelValue(name string) string {
	return fit(name, "", validation.LabelValueMaxLength)
}

// fit returns base+suffix when it is at most max characters long; otherwise
// base is cut and a hash of the whole base is added before suffix, keeping
// the result unique, at most max long and ending base in an alphanumeric
// character (as DNS subdomains and label values must).
func fit(base, suffix string, max int) string {
	if len(base)+len(suffix) <= max {
		return base + suffix
	}
	sum := sha256.Sum256([]byte(base))
	hash := hex.EncodeToString(sum[:])[:hashLength]
	keep := max - len(suffix) - len(hash) - 1
	prefix := strings.TrimRight(base[:keep], "-._")
	return prefix + "-" + hash + suffix
}
