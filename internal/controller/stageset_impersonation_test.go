package controller

import (
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/migration"
)

// grantConfigMaps lets a service account manage ConfigMaps in ns only.
func grantConfigMaps(t *testing.T, ns, sa string) {
	t.Helper()
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}})
	create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"configmaps"},
			Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"},
		}},
	})
	create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	})
}

func TestImpersonationDeniesWritesOutsideTheServiceAccountsRBAC(t *testing.T) {
	g := NewWithT(t)
	ns, other := env.NewNamespace(t), env.NewNamespace(t)
	grantConfigMaps(t, ns, "deployer")

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: allowed, namespace: " + ns + "}\n",
		"other.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: denied, namespace: " + other + "}\n",
	})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.ServiceAccountName = "deployer"
	create(t, obj)
	eventuallyReason(t, g, obj, "False/StageFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("forbidden"))
	g.Expect(exists("v1", "ConfigMap", other, "denied")()).To(BeFalse())
	g.Expect(exists("v1", "ConfigMap", ns, "allowed")()).To(BeFalse(), "nothing of the failing stage is applied")

	// Within its rights the same identity succeeds.
	src.publish("rev-2", files{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: allowed, namespace: " + ns + "}\n"})
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(exists("v1", "ConfigMap", ns, "allowed")()).To(BeTrue())
}

// Actions and migrations act with the StageSet's identity too: no more than
// its service account may do.
func TestActionsAndMigrationsActAsTheServiceAccount(t *testing.T) {
	g := NewWithT(t)
	ns, other := env.NewNamespace(t), env.NewNamespace(t)
	grantConfigMaps(t, ns, "deployer")
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: other, Name: "maintenance"}, Data: map[string]string{"mode": "off"}})

	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{
		"app/cm.yaml": configMap("app"), "db/m1.yaml": migrationJob("1"), "db/cm.yaml": configMap("db"),
	})
	st := stage("a", "./app")
	st.Actions = &stagesetv1.StageActions{Pre: []stagesetv1.Action{patchAction("maintenance-on", other, "maintenance", `{"data":{"mode":"on"}}`)}}
	patching := newStageSet(ns, "patching", src, st)
	migrating := newStageSet(ns, "migrating", src, stage("db", "./db"))
	for _, obj := range []*stagesetv1.StageSet{patching, migrating} {
		obj.Spec.ServiceAccountName = "deployer"
		obj.Spec.TargetNamespace = ns
		create(t, obj)
	}

	eventuallyReason(t, g, patching, "False/StageFailed")
	g.Expect(conditions.GetMessage(patching, meta.ReadyCondition)).To(And(ContainSubstring(`patch action "maintenance-on"`), ContainSubstring("forbidden")))
	maintenance := configMapObj(other, "maintenance")
	get(g, maintenance)
	g.Expect(maintenance.Data).To(HaveKeyWithValue("mode", "off"))

	eventuallyReason(t, g, migrating, "False/MigrationFailed")
	g.Expect(conditions.GetMessage(migrating, meta.ReadyCondition)).To(ContainSubstring("forbidden"))
	g.Expect(jobExists(ns, migration.JobName("migrating", "db", "1"))()).To(BeFalse())
	g.Expect(exists("v1", "ConfigMap", ns, "db")()).To(BeFalse())
}
