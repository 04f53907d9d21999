package migration

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/integrity"
)

// testKey is the controller's key in these tests.
var testKey = integrity.NewRandomKey()

func newStageSet(t *testing.T, ns, name string) *stagesetv1.StageSet {
	t.Helper()
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: time.Hour},
			SourceRef: &stagesetv1.SourceReference{Kind: "GitRepository", Name: "repo"},
			Stages:    []stagesetv1.Stage{{Name: "db"}, {Name: "app"}},
		},
	}
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating StageSet: %v", err)
	}
	return obj
}

func record(stage, version string) Record {
	return Record{
		Stage:       stage,
		Version:     version,
		Job:         JobName("app", stage, version),
		CompletedAt: time.Now().UTC().Truncate(time.Second),
		JobSpecHash: SpecHash(job("j", version)),
	}
}

func ledgerSecret(g Gomega, obj *stagesetv1.StageSet) *corev1.Secret {
	s := &corev1.Secret{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: obj.Namespace, Name: obj.Name + "-migrations"}, s)).To(Succeed())
	return s
}

func TestLedgerRoundTrip(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "app")
	l := &Ledger{Key: testKey, Client: env.Client}

	got, err := l.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeEmpty())
	g.Expect(got).NotTo(BeNil())

	db1, db2, app1 := record("db", "1.0.0"), record("db", "1.1.0+build/7"), record("app", "1.0.0")
	for _, r := range []Record{db1, db2, app1} {
		g.Expect(l.Record(ctx, obj, r)).To(Succeed())
	}
	got, err = l.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveLen(3))
	for _, want := range []Record{db1, db2, app1} {
		r, ok := got[Key(want.Stage, want.Version)]
		g.Expect(ok).To(BeTrue(), "record %s/%s", want.Stage, want.Version)
		g.Expect(r.CompletedAt.Equal(want.CompletedAt)).To(BeTrue())
		r.CompletedAt = want.CompletedAt
		g.Expect(r).To(Equal(want))
	}

	// Recording a version again replaces its record.
	again := db1
	again.JobSpecHash = "changed"
	g.Expect(l.Record(ctx, obj, again)).To(Succeed())
	got, err = l.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveLen(3))
	g.Expect(got[Key("db", "1.0.0")].JobSpecHash).To(Equal("changed"))

	g.Expect(got[Key("db", "1.0.0")].Status()).To(Equal(stagesetv1.MigrationRecord{
		Stage: "db", Version: "1.0.0", Job: JobName("app", "db", "1.0.0"), CompletedAt: ptrTime(db1.CompletedAt),
	}))
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}

// The ledger has no owner: the garbage collector would delete it with its
// StageSet (SPEC §6). Record also drops an owner an earlier version set.
func TestLedgerSecretHasNoOwner(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "app")
	l := &Ledger{Key: testKey, Client: env.Client}
	g.Expect(l.Record(ctx, obj, record("db", "1"))).To(Succeed())

	s := ledgerSecret(g, obj)
	g.Expect(s.Type).To(Equal(LedgerSecretType))
	g.Expect(s.Labels).To(HaveKeyWithValue(stagesetv1.NameLabel, "app"))
	g.Expect(s.OwnerReferences).To(BeEmpty())
	g.Expect(s.Data).To(HaveKey("db_1"))

	s.OwnerReferences = []metav1.OwnerReference{{APIVersion: stagesetv1.GroupVersion.String(), Kind: stagesetv1.StageSetKind, Name: "app", UID: obj.UID}}
	g.Expect(env.Client.Update(ctx, s)).To(Succeed())
	g.Expect(l.Record(ctx, obj, record("db", "2"))).To(Succeed())
	g.Expect(ledgerSecret(g, obj).OwnerReferences).To(BeEmpty())
}

// Forget removes the records of the stages given, and the Secret with the
// last record.
func TestLedgerForgetsStages(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "app")
	l := &Ledger{Key: testKey, Client: env.Client}
	g.Expect(l.Record(ctx, obj, record("db", "1"))).To(Succeed())
	g.Expect(l.Record(ctx, obj, record("app", "1"))).To(Succeed())

	g.Expect(l.Forget(ctx, obj, []string{"db"})).To(Succeed())
	got, err := l.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveLen(1))
	g.Expect(got).To(HaveKey(Key("app", "1")))

	g.Expect(l.Forget(ctx, obj, []string{"app"})).To(Succeed())
	err = env.Client.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: ledgerName(obj.Name)}, &corev1.Secret{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "the empty ledger is deleted: %v", err)
	g.Expect(l.Forget(ctx, obj, []string{"app"})).To(Succeed(), "no ledger, nothing to forget")
}

// TestLedgerSurvivesLossOfStatus recreates the StageSet, as a restore from
// a backup or a GitOps re-creation would: the records are still there, and
// the next Record hands the Secret to the new StageSet.
func TestLedgerSurvivesLossOfStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	old := newStageSet(t, ns, "app")
	l := &Ledger{Key: testKey, Client: env.Client}
	g.Expect(l.Record(ctx, old, record("db", "1"))).To(Succeed())

	g.Expect(env.Client.Delete(ctx, old)).To(Succeed())
	obj := newStageSet(t, ns, "app")
	g.Expect(obj.UID).NotTo(Equal(old.UID))
	g.Expect(obj.Status.Migrations).To(BeEmpty())

	got, err := (&Ledger{Key: testKey, Client: env.Client}).Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveKey(Key("db", "1")))

	g.Expect(l.Record(ctx, obj, record("db", "2"))).To(Succeed())
	got, err = l.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveLen(2))
}

func TestLedgerConcurrentRecordsAreAllKept(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "app")

	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One Ledger per writer, as separate reconciles would have.
			l := &Ledger{Key: testKey, Client: env.Client, Reader: env.Client}
			errs <- l.Record(ctx, obj, record([]string{"db", "app"}[i%2], fmt.Sprint(i)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	got, err := (&Ledger{Key: testKey, Client: env.Client}).Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(HaveLen(n))
}

// countingReader counts the reads that go through it.
type countingReader struct {
	client.Reader
	gets atomic.Int32
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	r.gets.Add(1)
	return r.Reader.Get(ctx, key, obj, opts...)
}

func TestLedgerReadsThroughReader(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := newStageSet(t, env.NewNamespace(t), "app")
	reader := &countingReader{Reader: env.Client}
	l := &Ledger{Key: testKey, Client: env.Client, Reader: reader}
	g.Expect(l.Record(ctx, obj, record("db", "1"))).To(Succeed())
	_, err := l.Load(ctx, obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(reader.gets.Load()).To(BeNumerically("==", 2))
}

func TestLedgerRefusesForeignAndCorruptSecrets(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	l := &Ledger{Key: testKey, Client: env.Client}

	foreign := newStageSet(t, ns, "foreign")
	user := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "foreign-migrations"},
		Data:       map[string][]byte{"password": []byte("x")},
	}
	g.Expect(env.Client.Create(ctx, user)).To(Succeed())
	_, err := l.Load(ctx, foreign)
	g.Expect(err).To(MatchError(ContainSubstring("not a migration ledger")))
	g.Expect(l.Record(ctx, foreign, record("db", "1"))).To(MatchError(ContainSubstring("not a migration ledger")))
	s := ledgerSecret(g, foreign)
	g.Expect(s.Data).To(Equal(user.Data))
	g.Expect(s.OwnerReferences).To(BeEmpty())

	corrupt := newStageSet(t, ns, "corrupt")
	g.Expect(l.Record(ctx, corrupt, record("db", "1"))).To(Succeed())
	s = ledgerSecret(g, corrupt)
	s.Data["db_2"] = []byte("{not json")
	g.Expect(env.Client.Update(ctx, s)).To(Succeed())
	_, err = l.Load(ctx, corrupt)
	g.Expect(err).To(MatchError(ContainSubstring(`record "db_2"`)))
}

// A tenant who can write Secrets but does not hold the key cannot make a
// migration count as done: every forged record fails the whole ledger.
func TestLedgerRefusesForgedRecords(t *testing.T) {
	ctx := context.Background()
	ns := env.NewNamespace(t)
	l := &Ledger{Key: testKey, Client: env.Client}

	// A genuine record of another StageSet, to be replayed.
	other := newStageSet(t, ns, "other")
	g := NewWithT(t)
	g.Expect(l.Record(ctx, other, record("db", "1"))).To(Succeed())
	replayed := ledgerSecret(g, other).Data["db_1"]

	plain, err := json.Marshal(record("db", "1"))
	g.Expect(err).NotTo(HaveOccurred())
	var otherKey []byte
	g.Expect((&Ledger{Key: integrity.NewRandomKey(), Client: env.Client}).Record(ctx, newStageSet(t, ns, "keyless"), record("db", "1"))).To(Succeed())
	otherKey = ledgerSecret(g, &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keyless"}}).Data["db_1"]

	cases := map[string]struct {
		value   []byte
		message string
	}{
		"unsealed record":                {plain, "carries no MAC"},
		"record sealed with another key": {otherKey, "has a MAC that is not this controller's"},
		"record of another StageSet":     {replayed, "has a MAC that is not this controller's"},
	}
	i := 0
	for name, tc := range cases {
		i++
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			obj := newStageSet(t, ns, fmt.Sprintf("forged-%d", i))
			forged := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: obj.Name + "-migrations"},
				Type:       LedgerSecretType,
				Data:       map[string][]byte{"db_1": tc.value},
			}
			setMeta(forged, obj)
			g.Expect(env.Client.Create(ctx, forged)).To(Succeed())

			got, err := l.Load(ctx, obj)
			g.Expect(got).To(BeNil())
			g.Expect(err).To(MatchError(integrity.ErrUnverified))
			g.Expect(err.Error()).To(ContainSubstring("migration ledger %s/%s failed verification: record \"db_1\" %s", ns, forged.Name, tc.message))

			// Nor is the forged ledger taken over by a new record.
			g.Expect(l.Record(ctx, obj, record("app", "1"))).To(MatchError(integrity.ErrUnverified))
			g.Expect(ledgerSecret(g, obj).Data).To(Equal(forged.Data))
		})
	}
}
