package controller

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
	"github.com/stageset/stageset-controller/internal/snapshot"
)

// These tests play a tenant who may write Secrets in the StageSet's
// namespace, but holds neither the controller's key nor its rights.

// sha256Digest is the digest form of the snapshot index.
func sha256Digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// forgeSnapshot rewrites the snapshot Secrets of obj so that its last good
// snapshot holds objects: valid JSON, gzip and digests, the StageSet's UID,
// and the Secrets keep their owner, type and labels. Only the MAC is
// missing, which a tenant cannot make.
func forgeSnapshot(g Gomega, obj *stagesetv1.StageSet, stage string, objects ...map[string]any) {
	// The controller may still be writing the snapshot it took when it
	// turned Ready: a conflict starts the forgery again from what it wrote.
	g.Eventually(func(g Gomega) {
		ctx := context.Background()
		var secrets corev1.SecretList
		g.Expect(env.Client.List(ctx, &secrets, client.InNamespace(obj.Namespace))).To(Succeed())
		var head *corev1.Secret
		for i := range secrets.Items {
			s := &secrets.Items[i]
			if _, isChunk := s.Labels[snapshot.GenerationLabel]; s.Type == snapshot.SecretType && !isChunk {
				head = s
			}
		}
		g.Expect(head).NotTo(BeNil(), "the StageSet has a snapshot")
		var idx struct {
			Generation int64 `json:"generation"`
			Chunks     []struct {
				Name string `json:"name"`
			} `json:"chunks"`
		}
		g.Expect(json.Unmarshal(head.Data["index.json"], &idx)).To(Succeed())

		doc, err := json.Marshal(map[string]any{"version": 1, "revision": "rev-1",
			"stages": []any{map[string]any{"name": stage, "revision": "rev-1", "objects": objects}}})
		g.Expect(err).NotTo(HaveOccurred())
		var buf bytes.Buffer
		gz := gzip.NewWriter(&buf)
		_, _ = gz.Write(doc)
		g.Expect(gz.Close()).To(Succeed())
		data := buf.Bytes()

		chunk := &corev1.Secret{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: obj.Namespace, Name: idx.Chunks[0].Name}, chunk)).To(Succeed())
		chunk.Data = map[string][]byte{"data": data}
		g.Expect(env.Client.Update(ctx, chunk)).To(Succeed())

		index, err := json.Marshal(map[string]any{"generation": idx.Generation, "uid": obj.UID, "digest": sha256Digest(data), "size": len(data),
			"chunks": []any{map[string]any{"name": chunk.Name, "digest": sha256Digest(data)}}})
		g.Expect(err).NotTo(HaveOccurred())
		head.Data = map[string][]byte{"index.json": index, "index.mac": []byte("hmac-sha256:" + hex.EncodeToString(make([]byte, 32)))}
		g.Expect(env.Client.Update(ctx, head)).To(Succeed())
	}, timeout, poll).Should(Succeed())
}

func TestForgedSnapshotIsNeverApplied(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"b/cm.yaml": configMap("gate", "state", "fine")})
	obj := newStageSet(ns, "app", src, gatedStage("b", "./b"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.RollbackOnFailure = true
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	labels := map[string]any{stagesetv1.NameLabel: "app", stagesetv1.NamespaceLabel: ns, stagesetv1.StageLabel: "b"}
	forgeSnapshot(g, obj, "b",
		map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "gate", "namespace": ns, "labels": labels}, "data": map[string]any{"state": "fine"}},
		map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "forged", "namespace": ns, "labels": labels}, "data": map[string]any{"k": "v"}},
	)

	// A failing rollout would roll back to the forged snapshot.
	src.publish("rev-2", files{"b/cm.yaml": configMap("gate", "state", "broken")})
	eventuallyReason(t, g, obj, "False/RollbackFailed")
	msg := conditions.GetMessage(obj, meta.ReadyCondition)
	g.Expect(msg).To(ContainSubstring(`rollback impossible: reading the snapshot`))
	g.Expect(msg).To(ContainSubstring("failed verification: the index in Secret app-snapshot carries no valid MAC"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.RollbackStoreFailedReason) }, timeout, poll).
		ShouldNot(BeEmpty())
	g.Expect(eventsWithReason(ns, "app", stagesetv1.RollbackStoreFailedReason)[0].Message).To(ContainSubstring("failed verification"))
	g.Consistently(exists("v1", "ConfigMap", ns, "forged"), 3*time.Second, poll).Should(BeFalse(), "the forged object is never applied")
}

func TestForgedLedgerRecordFailsTheMigration(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	// The record says version 1 of stage db completed; without the key it
	// cannot be sealed.
	record, err := json.Marshal(migration.Record{Stage: "db", Version: "1", Job: "shop-db-m-1", CompletedAt: time.Now().UTC(), JobSpecHash: "x"})
	g.Expect(err).NotTo(HaveOccurred())
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-migrations"},
		Type:       migration.LedgerSecretType,
		Data:       map[string][]byte{"db_1": record},
	})

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"db/m1.yaml":  migrationJob("1"),
		"db/app.yaml": configMap("app", "v", "1"),
	})
	obj := newStageSet(ns, "shop", src, stage("db", "./db"))
	obj.Spec.TargetNamespace = ns
	create(t, obj)

	eventuallyReason(t, g, obj, "False/MigrationFailed")
	msg := conditions.GetMessage(obj, meta.ReadyCondition)
	g.Expect(msg).To(ContainSubstring(fmt.Sprintf(`migrations of stage "db" cannot run: reading the migration ledger: migration ledger %s/shop-migrations failed verification: record "db_1" carries no MAC`, ns)))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "shop", stagesetv1.MigrationFailedReason) }, timeout, poll).
		ShouldNot(BeEmpty())
	// Neither skipped (the stage would apply) nor run twice.
	g.Expect(exists("v1", "ConfigMap", ns, "app")()).To(BeFalse())
	g.Expect(jobExists(ns, migration.JobName("shop", "db", "1"))()).To(BeFalse())
}

// A user's Secret that happens to have the name of a snapshot chunk is not
// overwritten by the controller (which writes with its own rights): the
// rollout succeeds and the snapshot failure is reported.
func TestForeignSecretNamedLikeASnapshotIsKept(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	mine := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app-snapshot-1-0"},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
	create(t, mine)

	readyStageSet(t, g, ns, files{"cm.yaml": configMap("cm")}, stage("a", "./"))
	g.Eventually(func() []eventv1.Event { return eventsWithReason(ns, "app", stagesetv1.RollbackStoreFailedReason) }, timeout, poll).
		ShouldNot(BeEmpty())
	g.Expect(eventsWithReason(ns, "app", stagesetv1.RollbackStoreFailedReason)[0].Message).To(ContainSubstring("refusing to overwrite Secret app-snapshot-1-0"))

	after := &corev1.Secret{}
	g.Expect(env.Client.Get(context.Background(), objKey(mine), after)).To(Succeed())
	g.Expect(after.Type).To(Equal(corev1.SecretTypeOpaque))
	g.Expect(after.Data).To(Equal(mine.Data))
	g.Expect(after.OwnerReferences).To(BeEmpty())
}
