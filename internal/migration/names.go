package migration

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	// Aliased: the package tests have a helper called names.
	fitnames "github.com/stageset/stageset-controller/internal/names"
)

// hashLength is the number of hex digits of the hashes in Job names,
// ledger names and data keys: 32 bits keep names that share a long prefix
// apart. Ledger names and data keys of existing installs were made with it,
// so it cannot change without losing their ledgers.
const hashLength = 8

// JobName returns the name of the Job that runs the migration version of
// stage in the StageSet called stageset: "<stageset>-<stage>-m-<version>"
// lower-cased, with every character not allowed in a DNS-1123 label replaced
// by '-' and leading and trailing '-' trimmed, then '-' and a hash of the
// unsanitised triple. The hash is always there, not only when the name is
// cut: "a-b"/"c" and "a"/"b-c" sanitise to the same "a-b-c-m-1", and two
// StageSets must never wait on each other's Job. A name longer than 63
// characters is cut before the hash.
//
// The name is deterministic so that a controller restarted while a migration
// runs finds and waits on the same Job instead of starting a second one.
// Anyone can compute it, so it keeps Jobs apart but proves nothing: a Job
// found under this name counts only when it carries the StageSet's ownership
// labels and the migration annotation (action.RunJobs).
//
// Versions that only differ in characters the sanitising replaces ("1.0" and
// "1_0") get different hashes but the same readable part; Split refuses such
// a pair in one stage so that Job names stay tellable apart by people.
func JobName(stageset, stage, version string) string {
	name := strings.Trim(sanitise(stageset+"-"+stage+"-m-"+version, isLabelChar, '-'), "-")
	return fitnames.Join(name, fitnames.Hash(hashLength, stageset, stage, version), "", validation.DNS1123LabelMaxLength)
}

// jobNameKey returns the part of a Job name that comes from version: two
// versions of one stage with the same key get the same JobName.
func jobNameKey(version string) string {
	return strings.TrimRight(sanitise(version, isLabelChar, '-'), "-")
}

// ledgerName returns the name of the ledger Secret of the StageSet called
// stageset, fit to a DNS-1123 subdomain.
func ledgerName(stageset string) string {
	return fitnames.FitHash(stageset, "-migrations", validation.DNS1123SubdomainMaxLength, fitnames.Hash(hashLength, stageset))
}

// dataKey returns the ledger data key of a migration. Stage names are
// DNS-1123 labels, so "_" separates stage and version unambiguously; when
// the version holds characters a data key may not, or the key is too long,
// they are replaced and a hash of the exact pair keeps keys distinct. The
// key is only an address: Load reads stage and version from the record.
// The cut keeps a trailing '.', '_' or '-', which data keys allow, unlike
// names.Join: keys already stored keep their address.
func dataKey(stage, version string) string {
	key := stage + "_" + version
	clean := sanitise(key, isDataKeyChar, '_')
	if clean == key && len(key) <= validation.DNS1123SubdomainMaxLength {
		return key
	}
	hash := fitnames.Hash(hashLength, stage, version)
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
