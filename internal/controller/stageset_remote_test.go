package controller

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/impersonation"
)

// kubeconfigFor renders a kubeconfig for a user of the test API server, as
// a user would store the kubeconfig of a remote cluster.
func kubeconfigFor(t *testing.T, user string, groups ...string) []byte {
	t.Helper()
	cfg, err := env.AddUser(user, groups...)
	if err != nil {
		t.Fatal(err)
	}
	return writeKubeconfig(t,
		&clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData},
		&clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken})
}

// writeKubeconfig renders a one-context kubeconfig of cluster and user.
func writeKubeconfig(t *testing.T, cluster *clientcmdapi.Cluster, user *clientcmdapi.AuthInfo) []byte {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["remote"] = cluster
	kc.AuthInfos["remote"] = user
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

// connCounter is a loopback TCP server that counts the connections it
// accepts and closes each at once: the server a hostile kubeconfig names.
type connCounter struct {
	ln net.Listener
	n  atomic.Int64
}

func newConnCounter(t *testing.T) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.n.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return c
}

func (c *connCounter) URL() string { return "https://" + c.ln.Addr().String() }

// execPlugin writes a client-go credential plugin that appends a line to
// the returned marker file each time it runs and prints an ExecCredential
// with status.
func execPlugin(t *testing.T, status map[string]string) (exec *clientcmdapi.ExecConfig, marker string) {
	t.Helper()
	dir := t.TempDir()
	marker = filepath.Join(dir, "ran")
	cred, err := json.Marshal(map[string]any{
		"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status,
	})
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "credential.sh")
	body := fmt.Sprintf("#!/bin/sh\necho ran >> %q\ncat <<'EOF'\n%s\nEOF\n", marker, cred)
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return &clientcmdapi.ExecConfig{
		Command: script, APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
	}, marker
}

// A tenant's kubeconfig runs in the controller's process: an exec plugin
// would run a program there, a tokenFile would send the controller's own
// token (here a stand-in) to the tenant's server. Both are refused with a
// message saying why, and nothing reaches the server they name.
func TestUnsafeKubeConfigsAreRefusedBeforeConnecting(t *testing.T) {
	exec, ran := execPlugin(t, map[string]string{"token": "from-plugin"})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("the-controllers-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		user *clientcmdapi.AuthInfo
		want string
	}{
		{"exec", &clientcmdapi.AuthInfo{Exec: exec},
			`user "remote" runs an exec plugin (` + fmt.Sprintf("%q", exec.Command) + `), which is refused unless the controller runs with --insecure-kubeconfig-exec`},
		{"tokenFile", &clientcmdapi.AuthInfo{TokenFile: tokenFile}, `user 'remote' references a tokenFile, only an inline token is supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			server := newConnCounter(t)
			create(t, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "remote"},
				Data:       map[string][]byte{"value": writeKubeconfig(t, &clientcmdapi.Cluster{Server: server.URL(), CertificateAuthorityData: env.Config.CAData}, tc.user)},
			})
			src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("never")})
			obj := newStageSet(ns, "app", src, stage("a", "./"))
			obj.Spec.TargetNamespace = ns
			obj.Spec.KubeConfig = &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "remote"}}
			create(t, obj)
			eventuallyReason(t, g, obj, "False/StageFailed")
			g.Consistently(server.n.Load, 2*time.Second, poll).Should(BeZero(), "connections to the kubeconfig's server")
			g.Expect(ran).NotTo(BeAnExistingFile(), "the exec plugin ran")
			g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(And(
				ContainSubstring("kubeconfig Secret "+ns+"/remote"), ContainSubstring(tc.want)))
		})
	}
}

// --insecure-kubeconfig-exec lets the plugin run: the Factory refuses the
// kubeconfig without the option and acts through the plugin's credential
// with it.
func TestKubeConfigExecRunsWhenAllowed(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	user, err := env.AddUser("exec-deployer", "system:masters")
	g.Expect(err).NotTo(HaveOccurred())
	exec, ran := execPlugin(t, map[string]string{
		"clientCertificateData": string(user.CertData), "clientKeyData": string(user.KeyData),
	})
	create(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "remote"},
		Data: map[string][]byte{"value": writeKubeconfig(t,
			&clientcmdapi.Cluster{Server: env.Config.Host, CertificateAuthorityData: env.Config.CAData},
			&clientcmdapi.AuthInfo{Exec: exec})},
	})
	obj := &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}
	obj.Spec.KubeConfig = &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "remote"}}

	refusing := &impersonation.Factory{Scheme: env.Client.Scheme(), Reader: env.Client}
	_, err = refusing.ClientFor(t.Context(), obj)
	g.Expect(err).To(MatchError(ContainSubstring("--insecure-kubeconfig-exec")))
	g.Expect(ran).NotTo(BeAnExistingFile())

	allowing := &impersonation.Factory{Scheme: env.Client.Scheme(), Reader: env.Client,
		KubeConfigOptions: runtimeclient.KubeConfigOptions{InsecureExecProvider: true}}
	kube, err := allowing.ClientFor(t.Context(), obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kube.Create(t.Context(), configMapObj(ns, "via-exec"))).To(Succeed())
	g.Expect(ran).To(BeAnExistingFile())
}

// A remote client is built once per kubeconfig Secret version and identity,
// not per run.
func TestRemoteClientsAreBuiltOncePerSecretVersion(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "remote"},
		Data:       map[string][]byte{"value": kubeconfigFor(t, "cached-deployer", "system:masters")},
	}
	create(t, secret)
	obj := &stagesetv1.StageSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}}
	obj.Spec.KubeConfig = &meta.KubeConfigReference{SecretRef: &meta.SecretKeyReference{Name: "remote"}}
	f := &impersonation.Factory{Scheme: env.Client.Scheme(), Reader: env.Client}

	first, err := f.ClientFor(t.Context(), obj)
	g.Expect(err).NotTo(HaveOccurred())
	again, err := f.ClientFor(t.Context(), obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(first), "same Secret version, same client")

	other := obj.DeepCopy()
	other.Spec.ServiceAccountName = "deployer"
	otherIdentity, err := f.ClientFor(t.Context(), other)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(otherIdentity).NotTo(BeIdenticalTo(first), "another identity, another client")

	secret.Data["value"] = kubeconfigFor(t, "cached-deployer-2", "system:masters")
	g.Expect(env.Client.Update(t.Context(), secret)).To(Succeed())
	rebuilt, err := f.ClientFor(t.Context(), obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rebuilt).NotTo(BeIdenticalTo(first), "a new Secret version, a new client")
	again, err = f.ClientFor(t.Context(), obj)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(again).To(BeIdenticalTo(rebuilt))

	g.Expect(rebuilt.Create(t.Context(), configMapObj(ns, "via-remote"))).To(Succeed())
}
