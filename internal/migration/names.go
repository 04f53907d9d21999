package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// hashLength is the number of hex digits of the hash that stands in for the
// cut-off tail of a name too long for its field: 32 bits keep names that
// share a long prefix apart.
const hashLength = 8

// JobName returns the name of the Job that runs the migration version of
// stage in the StageSet called stageset: "<stageset>-<stage>-m-<version>"
// lower-cased, with every character not allowed in a DNS-1123 label replaced
// by '-' and leading and trailing '-' trimmed. A name longer than 63
// characters is cut and suffixed with '-' and a hash of the unsanitised
// triple, so different triples keep different names.
//
// The name is deterministic so that a controller restarted while a migration
// runs finds and waits on the same Job instead of starting a second one.
// Versions that only differ in characters the sanitising replaces ("1.0" and
// "1_0") would share a name; Split refuses such a pair in one stage.
func JobName(stageset, stage, version string) string {
	name := strings.Trim(sanitise(stageset+"-"+stage+"-m-"+version, isLabelChar, '-'), "-")
	if len(name) <= validation.DNS1123LabelMaxLength {
		return name
	}
	hash := shortHash(stageset, stage, version)
	prefix := strings.TrimRight(name[:validation.DNS1123LabelMaxLength-len(hash)-1], "-")
	return prefix + "-" + hash
}

// jobNameKey returns the part of a Job name that comes from version: two
// versions of one stage with the same key get the same JobName.
func jobNameKey(version string) string {
	return strings.TrimRight(sanitise(version, isLabelChar, '-'), "-")
}

// ledgerName returns the name of the ledger Secret of the StageSet called
// stageset, fit to a DNS-1123 subdomain.
func ledgerName(stageset string) string {
	const suffix = "-migrations"
	if len(stageset)+len(suffix) <= validation.DNS1123SubdomainMaxLength {
		return stageset + suffix
	}
	hash := shortHash(stageset)
	keep := validation.DNS1123SubdomainMaxLength - len(suffix) - len(hash) - 1
	return strings.TrimRight(stageset[:keep], "-.") + "-" + hash + suffix
}

// dataKey returns the ledger data key of a migration. Stage names are
// DNS-1123 labels, so "_" separates stage and version unambiguously; when
// the version holds characters a data key may not, or the key is too long,
// they are replaced and a hash of the exact pair keeps keys distinct. The
// key is only an address: Load reads stage and version from the record.
func dataKey(stage, version string) string {
	key := stage + "_" + version
	clean := sanitise(key, isDataKeyChar, '_')
	if clean == key && len(key) <= validation.DNS1123SubdomainMaxLength {
		return key
	}
	hash := shortHash(stage, version)
	if keep := validation.DNS1123SubdomainMaxLength - len(hash) - 1; len(clean) > keep {
		clean = clean[:keep]
	}
	return clean + "-" + hash
}

// Key returns the key of a migration in the map Ledger.Load returns.
func Key(stage, version string) string {
	return stage + "/" + version
}

// sanitise lower-cases s when valid only accepts lower case, and replaces
// every byte valid refuses by with.
func sanitise(s string, valid func(byte) bool, with byte) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' && !valid(c) {
			c += 'a' - 'A'
		}
		if !valid(c) {
			c = with
		}
		b[i] = c
	}
	return string(b)
}

func isLabelChar(c byte) bool {
	return ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') || c == '-'
}

func isDataKeyChar(c byte) bool {
	return isLabelChar(c) || ('A' <= c && c <= 'Z') || c == '.' || c == '_'
}

// shortHash returns hashLength hex digits of the SHA-256 of parts, joined
// with a byte no Kubernetes name holds so that ("a-b", "c") and ("a", "b-c")
// hash differently.
func shortHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])[:hashLength]
}

// nameLabelValue returns the value of the name label on the ledger Secret:
// a StageSet name may be a 253-character DNS subdomain, a label value holds
// at most 63 characters.
func nameLabelValue(name string) string {
	if len(name) <= validation.LabelValueMaxLength {
		return name
	}
	hash := shortHash(name)
	return strings.TrimRight(name[:validation.LabelValueMaxLength-len(hash)-1], "-.") + "-" + hash
}
