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
