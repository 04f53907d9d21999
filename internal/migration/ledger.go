package migration

import (
	"context"
	"encoding/json"
	"errors"
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
	"github.com/stageset/stageset-controller/internal/integrity"
	fitnames "github.com/stageset/stageset-controller/internal/names"
)

// LedgerSecretType is the type of every ledger Secret. Load and Record
// refuse a Secret of the ledger's name with another type rather than read
// or overwrite something they did not write.
const LedgerSecretType corev1.SecretType = stagesetv1.GroupName + "/migrations"

// recordPurpose is the first field of a record's MAC, so that a MAC made
// for a snapshot never passes for a record.
const recordPurpose = "stageset.io/migration-record/v1"

// sealedRecord is a Record as the ledger Secret stores it: its JSON and the
// MAC of that JSON for the StageSet's namespace and name, the stage and the
// version. Any Secret writer of the namespace can write the ledger; only the
// controller can seal a record, so a forged one (which would skip its
// migration) fails verification.
type sealedRecord struct {
	Record json.RawMessage `json:"record"`
	MAC    string          `json:"mac"`
}

// ErrNotALedger is wrapped by errors about a Secret of the ledger's name
// that is of another type: it is neither read nor overwritten.
var ErrNotALedger = errors.New("not a migration ledger")

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
// "<stageset>-migrations", owned by nothing (see setMeta), with one data key
// per migration holding its Record as JSON. A Secret rather than a ConfigMap
// because the controller already may create and update Secrets (for
// snapshots, SPEC §7) and only reads ConfigMaps.
//
// Each record is sealed with Key and bound to the namespace and name of the
// StageSet, not to its UID: a StageSet deleted and created again, or
// restored from a backup, must find the records of the migrations its data
// already went through.
type Ledger struct {
	// Key seals and verifies the records. Required.
	Key *integrity.Key
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
// A record that does not verify fails the whole Load (the error wraps
// integrity.ErrUnverified): it is neither trusted, which would skip its
// migration, nor ignored, which could run a migration twice.
func (l *Ledger) Load(ctx context.Context, obj *stagesetv1.StageSet) (map[string]Record, error) {
	if l.Key == nil {
		return nil, fmt.Errorf("reading migration ledger of %s/%s: the ledger has no integrity key", obj.Namespace, obj.Name)
	}
	secret, err := l.get(ctx, obj)
	if err != nil || secret == nil {
		return map[string]Record{}, err
	}
	return l.open(secret, obj)
}

// open decodes and verifies every record of the ledger Secret of obj.
//
// Records written before records were sealed carry no MAC and are refused
// like forged ones: nothing tells them apart, and trusting them would let
// anyone who can write a Secret skip a migration. After an upgrade such a
// ledger fails verification until an operator who knows the migrations
// completed deletes the unsealed records and removes those migrations from
// the stage, or accepts that they run again.
func (l *Ledger) open(secret *corev1.Secret, obj *stagesetv1.StageSet) (map[string]Record, error) {
	records := make(map[string]Record, len(secret.Data))
	for key, raw := range secret.Data {
		unverified := func(format string, args ...any) error {
			return fmt.Errorf("migration ledger %s/%s %w: record %q %s", secret.Namespace, secret.Name,
				integrity.ErrUnverified, key, fmt.Sprintf(format, args...))
		}
		var sealed sealedRecord
		// A record that does not decode is an error, not a skip: skipping it
		// would run its migration again.
		if err := json.Unmarshal(raw, &sealed); err != nil {
			return nil, fmt.Errorf("decoding record %q of migration ledger %s/%s: %w", key, secret.Namespace, secret.Name, err)
		}
		if len(sealed.Record) == 0 || sealed.MAC == "" {
			return nil, unverified("carries no MAC (forged, or written before records were sealed)")
		}
		var r Record
		if err := json.Unmarshal(sealed.Record, &r); err != nil {
			return nil, fmt.Errorf("decoding record %q of migration ledger %s/%s: %w", key, secret.Namespace, secret.Name, err)
		}
		if !l.Key.Verify(sealed.MAC, recordPurpose, obj.Namespace, obj.Name, r.Stage, r.Version, string(sealed.Record)) {
			return nil, unverified("has a MAC that is not this controller's for StageSet %s/%s", obj.Namespace, obj.Name)
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
	if l.Key == nil {
		return fmt.Errorf("recording migration %s of stage %s: the ledger has no integrity key", r.Version, r.Stage)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding migration record: %w", err)
	}
	value, err := json.Marshal(sealedRecord{Record: raw, MAC: l.Key.Sum(recordPurpose, obj.Namespace, obj.Name, r.Stage, r.Version, string(raw))})
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
		// Only a ledger whose every record verifies is taken over: a Secret
		// of the ledger's type made by someone else is not adopted.
		if _, err := l.open(secret, obj); err != nil {
			return err
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
		return nil, fmt.Errorf("%w: secret %s has type %q, want %q", ErrNotALedger, key, secret.Type, LedgerSecretType)
	}
	return secret, nil
}

// setMeta labels the ledger Secret and clears its owner references. The
// ledger has no owner on purpose (SPEC §6): the garbage collector would
// delete it with its StageSet, and a StageSet deleted with deletionPolicy
// Orphan, re-created, or restored from a backup with a new UID would run
// every migration again on data that went through them. Forget removes it
// when a teardown really deleted what its migrations migrated.
func setMeta(secret *corev1.Secret, obj *stagesetv1.StageSet) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[stagesetv1.NameLabel] = fitnames.LabelValue(obj.Name)
	secret.OwnerReferences = nil
}

// Forget removes the records of the given stages from the ledger of obj,
// and the ledger Secret once no record is left. The finalizer calls it for
// the stages whose objects the teardown deleted: their data is gone, so a
// re-created StageSet must migrate afresh. A ledger that does not verify is
// left alone and reported.
func (l *Ledger) Forget(ctx context.Context, obj *stagesetv1.StageSet, stages []string) error {
	if len(stages) == 0 {
		return nil
	}
	forget := map[string]bool{}
	for _, st := range stages {
		forget[st] = true
	}
	err := retry.OnError(conflictBackoff, apierrors.IsConflict, func() error {
		secret, err := l.get(ctx, obj)
		if err != nil || secret == nil {
			return err
		}
		records, err := l.open(secret, obj)
		if err != nil {
			return err
		}
		kept := 0
		for _, r := range records {
			if forget[r.Stage] {
				delete(secret.Data, dataKey(r.Stage, r.Version))
			} else {
				kept++
			}
		}
		if kept == 0 {
			// The precondition keeps a record written meanwhile.
			err := l.Client.Delete(ctx, secret, client.Preconditions{ResourceVersion: &secret.ResourceVersion})
			return client.IgnoreNotFound(err)
		}
		return l.Client.Update(ctx, secret)
	})
	if err != nil {
		return fmt.Errorf("removing the records of stages %v from migration ledger %s/%s: %w", stages, obj.Namespace, ledgerName(obj.Name), err)
	}
	return nil
}
