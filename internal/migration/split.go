package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// ErrInvalid is wrapped by every error Split returns: the stage's manifests
// declare their migrations wrongly, which no retry fixes.
var ErrInvalid = errors.New("invalid migration")

// Migration is one migration Job of a stage.
type Migration struct {
	// Version is the value of the Job's stageset.io/migration annotation.
	Version string
	// Job is the Job as built, still carrying the annotation.
	Job *unstructured.Unstructured
}

// Split takes the Jobs annotated stageset.io/migration out of a stage's
// built objects. It returns the migrations sorted by version (see order) and
// the other objects in their original order. The annotation on anything but
// a batch Job, an empty version, and two Jobs of the same version (or of
// versions that JobName cannot tell apart) are errors naming the objects.
func Split(objects []*unstructured.Unstructured) ([]Migration, []*unstructured.Unstructured, error) {
	var migrations []Migration
	others := make([]*unstructured.Unstructured, 0, len(objects))
	byKey := map[string]Migration{}
	for _, obj := range objects {
		version, ok := obj.GetAnnotations()[stagesetv1.MigrationAnnotation]
		if !ok {
			others = append(others, obj)
			continue
		}
		if gvk := obj.GroupVersionKind(); gvk.Group != "batch" || gvk.Kind != "Job" {
			return nil, nil, fmt.Errorf("%w: %s carries the %s annotation, which only a batch Job may carry",
				ErrInvalid, utils.FmtUnstructured(obj), stagesetv1.MigrationAnnotation)
		}
		if strings.TrimSpace(version) == "" {
			return nil, nil, fmt.Errorf("%w: %s has an empty %s annotation",
				ErrInvalid, utils.FmtUnstructured(obj), stagesetv1.MigrationAnnotation)
		}
		key := jobNameKey(version)
		if other, dup := byKey[key]; dup {
			if other.Version == version {
				return nil, nil, fmt.Errorf("%w: %s and %s are both migration version %q",
					ErrInvalid, utils.FmtUnstructured(other.Job), utils.FmtUnstructured(obj), version)
			}
			return nil, nil, fmt.Errorf("%w: %s (version %q) and %s (version %q) would run as the same Job; versions must differ in more than case and punctuation",
				ErrInvalid, utils.FmtUnstructured(other.Job), other.Version, utils.FmtUnstructured(obj), version)
		}
		m := Migration{Version: version, Job: obj}
		byKey[key] = m
		migrations = append(migrations, m)
	}
	versions := make([]string, 0, len(migrations))
	for _, m := range migrations {
		versions = append(versions, m.Version)
	}
	cmp := order(versions)
	slices.SortStableFunc(migrations, func(a, b Migration) int { return cmp(a.Version, b.Version) })
	return migrations, others, nil
}

// SpecHashAnnotation on a migration Job holds the SpecHash of the Job as
// built, so that a failed Job whose manifest changed under the same version
// can be told from the same Job failing again.
const SpecHashAnnotation = "stageset.io/migration-spec-hash"

// SpecHash returns the SHA-256, in hex, of a Job's spec. The ledger keeps
// the hash of the Job that ran, so that a later change to a completed
// migration's Job is reported rather than silently ignored (it never runs
// again). Hash the Job as built, not as read back: the API server defaults
// fields and adds a selector, which would look like a change.
func SpecHash(job *unstructured.Unstructured) string {
	// encoding/json writes map keys sorted, so equal specs hash equally.
	b, err := json.Marshal(job.Object["spec"])
	if err != nil {
		// An unstructured object decoded from JSON or YAML always encodes;
		// hash the error so that the result is still deterministic.
		b = []byte(err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
