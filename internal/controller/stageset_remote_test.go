package controller

import (
	"testing"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// kubeconfigFor renders a kubeconfig for a user of the test API server, as
// a user would store the kubeconfig of a remote cluster.
func kubeconfigFor(t *testing.T, user string, groups ...string) []byte {
	t.Helper()
	cfg, err := env.AddUser(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["remote"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["remote"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["remote"] = &clientcmdapi.Context{Cluster: "remote", AuthInfo: "remote"}
	kc.CurrentContext = "remote"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestKubeConfigAppliesThroughTheRemoteIdentity(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "remote"},
		Data:       map[string][]byte{"value": kubeconfigFor(t, "remote-deployer", "system:masters")},
	})
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("remote")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.KubeConfig = &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "remote"}}
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")

	g.Expect(exists("v1", "ConfigMap", ns, "remote")()).To(BeTrue())

	// The writes really go through the kubeconfig's identity: one without
	// rights is refused.
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "powerless"},
		Data:       map[string][]byte{"value": kubeconfigFor(t, "powerless")},
	})
	get(g, obj)
	obj.Spec.KubeConfig.SecretRef.Name = "powerless"
	g.Expect(env.Client.Update(t.Context(), obj)).To(Succeed())
	eventuallyReason(t, g, obj, "False/StageFailed")
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(`User "powerless" cannot`))
}

func TestMissingKubeConfigSecretFailsTheRun(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("never")})
	obj := newStageSet(ns, "app", src, stage("a", "./"))
	obj.Spec.TargetNamespace = ns
	obj.Spec.KubeConfig = &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "absent"}}
	create(t, obj)
	eventuallyReason(t, g, obj, "False/StageFailed")
	g.Expect(exists("v1", "ConfigMap", ns, "never")()).To(BeFalse())
}
