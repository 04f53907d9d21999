package snapshot

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/stageset/stageset-controller/internal/names"
)

// headName returns the fixed name of the Secret that points at the last
// good generation of the StageSet called name. A name too long for a Secret
// is cut and hashed (names.Fit): 40 bits, so two StageSets whose names share
// a long prefix still get different Secrets.
func headName(name string) string {
	return names.Fit(name, "-snapshot", validation.DNS1123SubdomainMaxLength)
}

// chunkName returns the name of chunk i of a generation. Names are
// deterministic so a retried Save overwrites what a failed one left behind.
func chunkName(name string, generation int64, i int) string {
	return names.Fit(name, fmt.Sprintf("-snapshot-%d-%d", generation, i), validation.DNS1123SubdomainMaxLength)
}
