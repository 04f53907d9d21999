package apply

import (
	"context"
	"testing"
	"time"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

func TestDelete_OnlyWhatTheStageStillOwns(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	owner := Owner{Name: "s", Namespace: ns, Stage: "one"}
	m := newManager()

	kept := configMap(ns, "kept", nil)
	kept.SetAnnotations(map[string]string{stagesetv1.PruneAnnotation: stagesetv1.DisabledValue})
	_, err := m.Apply(ctx, owner, []*unstructured.Unstructured{configMap(ns, "gone", nil), configMap(ns, "moved", nil), kept}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	// Another stage took "moved" over.
	_, err = m.Apply(ctx, Owner{Name: "s", Namespace: ns, Stage: "two"}, []*unstructured.Unstructured{configMap(ns, "moved", nil)}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	inv := &stagesetv1.ResourceInventory{Entries: []stagesetv1.ResourceRef{
		{ID: ns + "_gone__ConfigMap", Version: "v1"},
		{ID: ns + "_moved__ConfigMap", Version: "v1"},
		{ID: ns + "_kept__ConfigMap", Version: "v1"},
		{ID: ns + "_never-existed__ConfigMap", Version: "v1"},
	}}
	objects, err := InventoryObjects(inv)
	g.Expect(err).NotTo(HaveOccurred())

	cs, failed, err := m.Delete(ctx, owner, objects)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(failed).To(BeEmpty())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{
		"ConfigMap/" + ns + "/gone":          ssa.DeletedAction,
		"ConfigMap/" + ns + "/moved":         ssa.SkippedAction,
		"ConfigMap/" + ns + "/kept":          ssa.SkippedAction,
		"ConfigMap/" + ns + "/never-existed": ssa.DeletedAction,
	}))
	g.Expect(liveObject(t, configMap(ns, "gone", nil))).To(BeNil())
	g.Expect(liveObject(t, configMap(ns, "moved", nil))).NotTo(BeNil())
	g.Expect(liveObject(t, kept)).NotTo(BeNil())
}

func TestDelete_KindNoLongerServed(t *testing.T) {
	g := NewWithT(t)
	ghost := &unstructured.Unstructured{}
	ghost.SetAPIVersion("nowhere.stageset.io/v1")
	ghost.SetKind("Ghost")
	ghost.SetName("g")
	ghost.SetNamespace("n")
	cs, failed, err := newManager().Delete(context.Background(), Owner{Name: "s", Namespace: "n", Stage: "one"}, []*unstructured.Unstructured{ghost})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(failed).To(BeEmpty())
	g.Expect(cs.ToMap()).To(Equal(map[string]ssa.Action{"Ghost/n/g": ssa.DeletedAction}))
}

func TestDelete_ReturnsFailedObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	owner := Owner{Name: "s", Namespace: ns, Stage: "one"}

	cm := configMap(ns, "cm", nil)
	secret := fromYAML(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: secret, namespace: "+ns+"}\nstringData: {k: v}")
	_, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{cm, secret}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	// A tenant that may delete ConfigMaps but not Secrets.
	user := testenv.RandomName("tenant")
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pruner", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps", "secrets"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"delete"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pruner", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pruner"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}
	g.Expect(env.Client.Create(ctx, role)).To(Succeed())
	g.Expect(env.Client.Create(ctx, binding)).To(Succeed())
	cfg, err := env.AddUser(user)
	g.Expect(err).NotTo(HaveOccurred())
	tenant, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	g.Expect(err).NotTo(HaveOccurred())

	cs, failed, err := NewManager(tenant, fieldManager).Delete(ctx, owner, []*unstructured.Unstructured{cm, secret})
	g.Expect(err).To(MatchError(ContainSubstring("Secret/" + ns + "/secret delete failed")))
	g.Expect(failed).To(HaveLen(1))
	g.Expect(failed[0].GetKind()).To(Equal("Secret"))
	g.Expect(cs.ToMap()).To(HaveKeyWithValue("ConfigMap/"+ns+"/cm", ssa.DeletedAction))
	g.Expect(liveObject(t, cm)).To(BeNil())
	g.Expect(liveObject(t, secret)).NotTo(BeNil())
}

// Terminating lists what finalizers still hold after a delete, with the
// latest deletion; a terminating Namespace deleted a second time (as each
// pass of a teardown wait does) counts as deleted.
func TestDelete_TerminatingObjects(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	owner := Owner{Name: "s", Namespace: ns, Stage: "one"}
	m := newManager()

	held := func(name string) *unstructured.Unstructured {
		obj := configMap(ns, name, nil)
		obj.SetFinalizers([]string{"test.stageset.io/hold"})
		return obj
	}
	space := &unstructured.Unstructured{}
	space.SetAPIVersion("v1")
	space.SetKind("Namespace")
	space.SetName(testenv.RandomName("terminating"))
	first, second, plain := held("first"), held("second"), configMap(ns, "plain", nil)
	_, err := m.Apply(ctx, owner, []*unstructured.Unstructured{first, second, plain, space}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		for _, o := range []*unstructured.Unstructured{first, second} {
			_ = env.Client.Patch(ctx, o, client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`)))
		}
	})

	_, _, err = m.Delete(ctx, owner, []*unstructured.Unstructured{first, plain, space})
	g.Expect(err).NotTo(HaveOccurred())
	// deletionTimestamp has a resolution of a second.
	time.Sleep(1100 * time.Millisecond)
	cs, failed, err := m.Delete(ctx, owner, []*unstructured.Unstructured{second, space})
	g.Expect(err).NotTo(HaveOccurred(), "the Namespace deleted again")
	g.Expect(failed).To(BeEmpty())
	g.Expect(cs.ToMap()).To(HaveKeyWithValue("Namespace/"+space.GetName(), ssa.DeletedAction))

	terminating, since, err := m.Terminating(ctx, []*unstructured.Unstructured{first, second, plain, space, configMap(ns, "never-existed", nil)})
	g.Expect(err).NotTo(HaveOccurred())
	var names []string
	for _, o := range terminating {
		names = append(names, o.GetName())
	}
	g.Expect(names).To(ConsistOf("first", "second", space.GetName()), "envtest never finishes a Namespace")
	live := liveObject(t, second)
	g.Expect(since).To(Equal(live.GetDeletionTimestamp().Time), "the latest deletion")
}
