package faults

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// apiServerAddr is the host:port of the API server.
func apiServerAddr(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(restConfig.Host)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// proxiedKubeconfig writes the admin kubeconfig with the API server's
// address replaced by addr (the TLS names stay those of the API server).
func proxiedKubeconfig(t *testing.T, addr string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cluster.KubeconfigPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cfg.Clusters {
		u, err := url.Parse(c.Server)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = addr
		c.Server = u.String()
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestRolloutsThroughFaultyConnections runs the controller through a proxy
// that adds latency, resets and stalls connections and cuts them all for a
// few seconds (as an API server restart does) while two rollouts of three
// stages go on: both end Ready at their revision. Then, for FAULTS_DURATION
// (30 s in `make test`, 10 minutes in `make reliability`), the StageSet is
// asked to reconcile every 2 s through the same faults, with an outage
// every minute, and the controller's goroutines and resident memory are
// sampled: the median of the last third may not exceed that of the first
// third by more than 25 goroutines or 25%. At the end, with the faults off,
// a last request is handled.
func TestRolloutsThroughFaultyConnections(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	duration := time.Duration(envInt(t, "FAULTS_DURATION_SECONDS", 30)) * time.Second
	seed := uint64(envInt(t, "FAULTS_SEED", time.Now().UnixNano()))
	t.Logf("seed %d, %s of faults after the rollouts (replay with FAULTS_SEED=%d)", seed, duration, seed)

	proxy, err := newFaultProxy(apiServerAddr(t), seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.close)
	kubeconfig := proxiedKubeconfig(t, proxy.addr())

	ns := newNamespace(t)
	stageFiles := func(v string) files {
		out := files{}
		for _, s := range []string{"s1", "s2", "s3"} {
			out[s+"/cm.yaml"] = configMap(s+"-config", v)
			out[s+"/deploy.yaml"] = deployment(s + "-web")
		}
		return out
	}
	repo := newGitRepo(t, ns, "rev-1", stageFiles("v1"))

	metricsAddr := freeAddr(t)
	c := newController(t, "controller", nil, "--watch-label-selector="+testLabel+"=network",
		"--kubeconfig="+kubeconfig, "--metrics-bind-address="+metricsAddr)
	proxy.enabled.Store(true)
	c.start()
	obj := newStageSet(ns, stage("s1"), stage("s2"), stage("s3"))
	obj.Labels = map[string]string{testLabel: "network"}
	g.Expect(kube.Create(ctx, obj)).To(Succeed())

	for i, rev := range []string{"rev-1", "rev-2"} {
		if i == 1 {
			repo.publish(rev, stageFiles("v2"))
		}
		time.Sleep(2 * time.Second)
		proxy.outage(3 * time.Second)
		waitReady(g, obj, rev)
		t.Logf("%s Ready through the faults", rev)
	}

	var samples []processSample
	handled := map[string]bool{}
	start := time.Now()
	lastOutage := start
	n := 0
	for ; time.Since(start) < duration; n++ {
		time.Sleep(2 * time.Second)
		// The test's own client goes straight to the API server.
		g.Expect(requestReconcile(ctx, obj, fmt.Sprintf("t%d", n))).To(Succeed())
		if time.Since(lastOutage) > time.Minute {
			proxy.outage(3 * time.Second)
			lastOutage = time.Now()
		}
		get(g, obj)
		handled[obj.Status.LastHandledReconcileAt] = true
		if n%2 == 0 {
			s, err := sampleProcess(metricsAddr)
			g.Expect(err).NotTo(HaveOccurred())
			samples = append(samples, s)
		}
	}
	g.Expect(c.running()).To(BeTrue(), "the controller ended")
	// The controller kept working through the faults: most requests were
	// handled (a request every 2 s, seen every 2 s, so a slow run skips
	// some).
	t.Logf("%d of %d requests seen handled", len(handled), n)
	g.Expect(len(handled)).To(BeNumerically(">=", n/3), "requests handled through the faults")

	proxy.enabled.Store(false)
	token := "final"
	g.Expect(requestReconcile(ctx, obj, token)).To(Succeed())
	g.Eventually(func() string { get(g, obj); return obj.Status.LastHandledReconcileAt }, timeout, poll).Should(Equal(token))
	g.Expect(readyOf(obj)).To(Equal("True/Succeeded"), message(obj))

	resets, stalls, outages := proxy.stats()
	third := len(samples) / 3
	g.Expect(third).To(BeNumerically(">", 0), "too few samples")
	first, last := summarize(samples[:third]), summarize(samples[len(samples)-third:])
	t.Logf("faults: %d resets, %d stalls, %d outages; goroutines %d → %d (max %d), RSS %.1f → %.1f MiB (max %.1f), %d samples over %s",
		resets, stalls, outages, first.goroutines, last.goroutines, slices.MaxFunc(samples, byGoroutines).goroutines,
		first.rss, last.rss, slices.MaxFunc(samples, byRSS).rss, len(samples), time.Since(start).Round(time.Second))
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		report := fmt.Sprintf("network faults: %d resets, %d stalls, %d outages over %s; goroutines median %d (first third) -> %d (last third); RSS median %.1f -> %.1f MiB\n",
			resets, stalls, outages, time.Since(start).Round(time.Second), first.goroutines, last.goroutines, first.rss, last.rss)
		g.Expect(os.WriteFile(path, []byte(report), 0o644)).To(Succeed())
	}
	g.Expect(last.goroutines).To(BeNumerically("<=", first.goroutines+25), "goroutines grew")
	g.Expect(last.rss).To(BeNumerically("<=", first.rss*1.25), "resident memory grew")

	// What the last rollout applied is there.
	for _, s := range []string{"s1", "s2", "s3"} {
		cm := &corev1.ConfigMap{}
		g.Expect(kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: s + "-config"}, cm)).To(Succeed())
		g.Expect(cm.Data).To(HaveKeyWithValue("v", "v2"))
	}
}

// requestReconcile stamps a requestedAt token on obj, as `flux reconcile`
// does.
func requestReconcile(ctx context.Context, obj client.Object, token string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, meta.ReconcileRequestAnnotation, token)
	return kube.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)))
}
