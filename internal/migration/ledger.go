package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// LedgerSecretType is the type of every ledger Secret. Load and Record
// refuse a Secret of the ledger's name with another type rather than read
// or overwrite something they did not write.
const LedgerSecretType corev1.SecretType = stagesetv1.GroupName + "/migrations"

// Record is one completed migration, as the ledger keeps it.
type Record struct {
	Stage       string    `json:"stage"`
	Version     string    `json:"version"`
	Job         string    `json:"job"`
	CompletedAt time.Time `json:"completedAt"`
	// JobSpecHash is SpecHash of the Job that ran.
	JobSpecHash string `json:"jobSpecHash"`
}

// Status returns r as the StageSet status lists it.
func (r Record) Status() stagesetv1.MigrationRecord {
	return stagesetv1.MigrationRecord{
		Stage:       r.Stage,
		Version:     r.Version,
		Job:         r.Job,
		CompletedAt: ptr.To(metav1.NewTime(r.CompletedAt)),
	}
}

// Ledger records completed migrations durably, outside the StageSet
// status, which can be lost (restored from a backup without status,
// recreated by GitOps); a migration must never run twice.
//
// It keeps one Secret per StageSet, in its namespace, named
// "<stageset>-migrations", owned by the StageSet, with one data key per
// migration holding its Record as JSON. A Secret rather than a ConfigMap
// because the controller already may create and update Secrets (for
// snapshots, SPEC §7) and only reads ConfigMaps, and because it keeps the
// records next to the snapshots, with the same owner and lifetime.
type Ledger struct {
	// Client writes the ledger Secret, and reads it when Reader is nil.
	Client client.Client
	// Reader, when set, reads the ledger Secret; pass the manager's API
	// reader, since the manager's cache does not hold Secrets and a stale
	// read would only make Record retry.
	Reader client.Reader
}

// Load returns the completed migrations of obj keyed by Key(stage, version);
// an empty map when there are none. It reads the ledger whichever StageSet
// of that name wrote it, since a recreated StageSet migrates the same data.
func (l *Ledger) Load(ctx context.Context, obj *stagesetv1.StageSet) (map[string]Record, error) {
	secret, err := l.get(ctx, obj)
	if err != nil || secret == nil {
		return map[string]Record{}, err
	}
	records := make(map[string]Record, len(secret.Data))
	for key, raw := range secret.Data {
		var r Record
		// A record that does not decode is an error, not a skip: skipping it
		// would run its migration again.
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("decoding record %q of migration ledger %s/%s: %w", key, secret.Namespace, secret.Name, err)
		}
		records[Key(r.Stage, r.Version)] = r
	}
	return records, nil
}

// conflictBackoff bounds the retries of Record on a write conflict. Writers
// are few (one reconcile per StageSet at a time), so a handful of jittered
// retries suffices.
var conflictBackoff = wait.Backoff{Steps: 10, Duration: 10 * time.Millisecond, Factor: 1.5, Jitter: 1}

// Record adds r to the ledger of obj, creating the Secret when it is
// missing and replacing an earlier record of the same stage and version. It
// reads, changes and writes the Secret with optimistic concurrency and
// retries on conflict, so concurrent calls lose no record.
func (l *Ledger) Record(ctx context.Context, obj *stagesetv1.StageSet, r Record) error {
	value, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding migration record: %w", err)
	}
	key := dataKey(r.Stage, r.Version)
	retriable := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err = retry.OnError(conflictBackoff, retriable, func() error {
		secret, err := l.get(ctx, obj)
		if err != nil {
			return err
		}
		if secret == nil {
			secret = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: ledgerName(obj.Name), Namespace: obj.Namespace},
				Type:       LedgerSecretType,
			}
			setMeta(secret, obj)
			secret.Data = map[string][]byte{key: value}
			return l.Client.Create(ctx, secret)
		}
		setMeta(secret, obj)
		if secret.Data == nil {
			secret.Data = map[string][]byte{}
		}
		secret.Data[key] = value
		return l.Client.Update(ctx, secret)
	})
	if err != nil {
		return fmt.Errorf("recording migration %s of stage %s in ledger %s/%s: %w",
			r.Version, r.Stage, obj.Namespace, ledgerName(obj.Name), err)
	}
	return nil
}

// get returns the ledger Secret of obj, or nil when there is none.
func (l *Ledger) get(ctx context.Context, obj *stagesetv1.StageSet) (*corev1.Secret, error) {
	reader := l.Reader
	if reader == nil {
		reader = l.Client
	}
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: obj.Namespace, Name: ledgerName(obj.Name)}
	if err := reader.Get(ctx, key, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading migration ledger %s: %w", key, err)
	}
	if secret.Type != LedgerSecretType {
		return nil, fmt.Errorf("secret %s is not a migration ledger (type %q, want %q)", key, secret.Type, LedgerSecretType)
	}
	return secret, nil
}

// setMeta labels the ledger Secret and makes obj its only controller. An
// earlier StageSet of the same name is replaced as owner so that the
// records follow the StageSet that now runs the migrations. BlockOwnerDeletion
// is off so that deleting the StageSet never waits for its ledger.
func setMeta(secret *corev1.Secret, obj *stagesetv1.StageSet) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[stagesetv1.NameLabel] = nameLabelValue(obj.Name)
	secret.OwnerReferences = []metav1.OwnerReference{{
		APIVersion:         stagesetv1.GroupVersion.String(),
		Kind:               stagesetv1.StageSetKind,
		Name:               obj.Name,
		UID:                obj.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(false),
	}}
}
