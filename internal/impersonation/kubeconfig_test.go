package impersonation

import (
	"strings"
	"testing"
	"time"

	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/stageset/stageset-controller/internal/version"
)

// kubeconfig returns a one-context kubeconfig whose cluster and user the
// case edits.
func kubeconfig(edit func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)) *clientcmdapi.Config {
	cluster := &clientcmdapi.Cluster{Server: "https://127.0.0.1:1", CertificateAuthorityData: []byte("ca")}
	user := &clientcmdapi.AuthInfo{Token: "inline"}
	if edit != nil {
		edit(cluster, user)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = cluster
	cfg.AuthInfos["u"] = user
	cfg.Contexts["x"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "x"
	return cfg
}

func TestCheckKubeConfig(t *testing.T) {
	exec := &clientcmdapi.ExecConfig{Command: "/bin/true", APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: clientcmdapi.NeverExecInteractiveMode}
	cases := []struct {
		name string
		edit func(*clientcmdapi.Cluster, *clientcmdapi.AuthInfo)
		opts runtimeclient.KubeConfigOptions
		want string // "" when accepted
	}{
		{name: "inline credentials"},
		{name: "exec", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.Exec = exec },
			want: `user "u" runs an exec plugin ("/bin/true"), which is refused unless the controller runs with --insecure-kubeconfig-exec`},
		{name: "exec allowed", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.Exec = exec },
			opts: runtimeclient.KubeConfigOptions{InsecureExecProvider: true}},
		{name: "token file", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			u.TokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
		}, want: `tokenFile`},
		{name: "client certificate file", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.ClientCertificate = "/etc/tls.crt" },
			want: `client-certificate file`},
		{name: "client key file", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.ClientKey = "/etc/tls.key" },
			want: `client-key file`},
		{name: "certificate authority file", edit: func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) { c.CertificateAuthority = "/etc/ca.crt" },
			want: `certificate-authority file`},
		{name: "auth provider", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
			u.AuthProvider = &clientcmdapi.AuthProviderConfig{Name: "oidc"}
		}, want: `user "u" uses the auth-provider "oidc", which is not supported`},
		{name: "proxy", edit: func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) { c.ProxyURL = "socks5://10.0.0.1:1080" },
			want: `cluster "c" sets a proxy-url, which is not allowed`},
		{name: "proxy even with both flags", edit: func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) { c.ProxyURL = "http://10.0.0.1:3128" },
			opts: runtimeclient.KubeConfigOptions{InsecureExecProvider: true, InsecureTLS: true},
			want: `proxy-url`},
		{name: "insecure", edit: func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
			c.InsecureSkipTLSVerify, c.CertificateAuthorityData = true, nil
		}, want: `cluster "c" sets insecure-skip-tls-verify, which is refused unless the controller runs with --insecure-kubeconfig-tls`},
		{name: "insecure allowed", edit: func(c *clientcmdapi.Cluster, _ *clientcmdapi.AuthInfo) {
			c.InsecureSkipTLSVerify, c.CertificateAuthorityData = true, nil
		}, opts: runtimeclient.KubeConfigOptions{InsecureTLS: true}},
		{name: "impersonation", edit: func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) { u.Impersonate = "system:admin" },
			want: `user "u" impersonates`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := checkKubeConfig(kubeconfig(tc.edit), tc.opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

// A refused kubeconfig is refused by remoteConfig itself, before the client
// is built: a caller cannot skip the check.
func TestRemoteConfigRefusesBeforeBuilding(t *testing.T) {
	data, err := clientcmd.Write(*kubeconfig(func(_ *clientcmdapi.Cluster, u *clientcmdapi.AuthInfo) {
		u.Token, u.TokenFile = "", "/var/run/secrets/kubernetes.io/serviceaccount/token"
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remoteConfig(t.Context(), data, runtimeclient.KubeConfigOptions{}, runtimeclient.Options{}); err == nil || !strings.Contains(err.Error(), "tokenFile") {
		t.Fatalf("got %v, want the tokenFile refused", err)
	}
}

// The remote config carries the controller's user agent, a request timeout
// and its QPS and burst (the server at port 1 answers nothing, so it has no
// priority and fairness to lift the client-side limit).
func TestRemoteConfigSetsTimeoutUserAgentAndRates(t *testing.T) {
	data, err := clientcmd.Write(*kubeconfig(nil))
	if err != nil {
		t.Fatal(err)
	}
	opts := runtimeclient.KubeConfigOptions{UserAgent: "stageset-controller/test"}
	cfg, err := remoteConfig(t.Context(), data, opts, runtimeclient.Options{QPS: 7, Burst: 11})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.UserAgent != "stageset-controller/test" || cfg.Timeout != 30*time.Second || cfg.QPS != 7 || cfg.Burst != 11 {
		t.Fatalf("got user agent %q, timeout %s, QPS %v, burst %d", cfg.UserAgent, cfg.Timeout, cfg.QPS, cfg.Burst)
	}
	if cfg.BearerToken != "inline" || cfg.Host != "https://127.0.0.1:1" {
		t.Fatalf("got token %q, host %q", cfg.BearerToken, cfg.Host)
	}
	if ua := (&Factory{}).userAgent(); ua != "stageset-controller/"+version.Version {
		t.Fatalf("default user agent %q", ua)
	}
}
