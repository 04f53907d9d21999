package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// TestLoadWithChangingSources runs FAULTS_LOAD_STAGESETS StageSets (20 in
// `make test`, 500 in `make reliability`), each over a source of its own,
// while a random tenth of the sources publish a new revision every 2 s for
// FAULTS_LOAD_SECONDS (20 s / 300 s). Then the publishing stops and every
// StageSet must end Ready at its source's last revision (no lost update),
// the work queue must drain, no reconcile may have returned an error to
// the queue or ended with any reason but Succeeded (or Progressing), and the controller's goroutines and resident memory must be
// flat (median of the last third of samples within 25 goroutines and 25%
// of the first third's).
func TestLoadWithChangingSources(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	n := int(envInt(t, "FAULTS_LOAD_STAGESETS", 20))
	duration := time.Duration(envInt(t, "FAULTS_LOAD_SECONDS", 20)) * time.Second
	seed := uint64(envInt(t, "FAULTS_SEED", time.Now().UnixNano()))
	t.Logf("%d StageSets, %s of changes, seed %d", n, duration, seed)
	rnd := rand.New(rand.NewPCG(seed, 2))

	content := func(i, rev int) files {
		return files{"app/cm.yaml": configMap(fmt.Sprintf("app-%d", i), fmt.Sprintf("r%d", rev)) + "---\n" +
			configMap(fmt.Sprintf("other-%d", i), "fixed")}
	}
	// One namespace per StageSet, as tenants have; created up front.
	type tenant struct {
		ns   string
		repo *testenv.Repo
		last int
	}
	tenants := make([]*tenant, n)
	var eg errgroup.Group
	eg.SetLimit(8)
	for i := range tenants {
		eg.Go(func() error {
			// No t.Fatal here: it may only be called from the test's
			// goroutine.
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testenv.RandomName("faults")}}
			if err := kube.Create(ctx, ns); err != nil {
				return err
			}
			repo, err := testenv.NewRepo(ctx, kube, artifacts, stagesetv1.GitRepositoryKind, ns.Name, "repo", "r0", content(i, 0))
			if err != nil {
				return err
			}
			tenants[i] = &tenant{ns: ns.Name, repo: repo}
			obj := newStageSet(ns.Name, stage("app"))
			obj.Labels = map[string]string{testLabel: "load"}
			return kube.Create(ctx, obj)
		})
	}
	g.Expect(eg.Wait()).To(Succeed())

	metricsAddr := freeAddr(t)
	c := newController(t, "controller", nil, "--watch-label-selector="+testLabel+"=load",
		"--metrics-bind-address="+metricsAddr, "--concurrent=4", "--log-level=info")
	c.start()
	start := time.Now()

	var samples []processSample
	for round := 1; time.Since(start) < duration; round++ {
		time.Sleep(2 * time.Second)
		for _, i := range rnd.Perm(n)[:max(1, n/10)] {
			tn := tenants[i]
			tn.last = round
			eg.Go(func() error { return tn.repo.Publish(ctx, fmt.Sprintf("r%d", round), content(i, round)) })
		}
		g.Expect(eg.Wait()).To(Succeed())
		if s, err := sampleProcess(metricsAddr); err == nil {
			samples = append(samples, s)
		}
	}
	published := time.Now()

	for i, tn := range tenants {
		obj := newStageSet(tn.ns, stage("app"))
		rev := fmt.Sprintf("r%d", tn.last)
		g.Eventually(func() string {
			get(g, obj)
			return readyOf(obj) + " " + obj.Status.LastAppliedRevision
		}, timeout, poll).Should(Equal("True/Succeeded "+rev), "StageSet %d: %s", i, message(obj))
	}
	settled := time.Since(published)
	g.Eventually(func() float64 {
		m, err := scrape(metricsAddr)
		g.Expect(err).NotTo(HaveOccurred())
		return sum(m, "workqueue_depth", `name="stageset"`)
	}, timeout, poll).Should(BeZero())
	m, err := scrape(metricsAddr)
	g.Expect(err).NotTo(HaveOccurred())
	errors := sum(m, "controller_runtime_reconcile_errors_total", `controller="stageset"`)
	runs := sum(m, "controller_runtime_reconcile_total", `controller="stageset"`)
	// A run that fails (a stage, an artifact) returns no error to the
	// queue: it ends with its Ready reason.
	failed := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "stageset_reconcile_total{") && v > 0 &&
			!strings.Contains(k, `reason="Succeeded"`) && !strings.Contains(k, `reason="Progressing"`) {
			failed[k] = v
		}
	}

	third := len(samples) / 3
	g.Expect(third).To(BeNumerically(">", 0), "too few samples")
	first, last := summarize(samples[:third]), summarize(samples[len(samples)-third:])
	t.Logf("%d reconciles, %d returned an error; all Ready at their last revision %s after the last publication; goroutines %d → %d, RSS %.1f → %.1f MiB (%d samples)",
		int(runs), int(errors), settled.Round(100*time.Millisecond), first.goroutines, last.goroutines, first.rss, last.rss, len(samples))
	g.Expect(errors).To(BeZero(), "reconciles returned errors")
	g.Expect(failed).To(BeEmpty(), "runs that ended with another reason than Succeeded")
	g.Expect(last.goroutines).To(BeNumerically("<=", first.goroutines+25), "goroutines grew")
	g.Expect(last.rss).To(BeNumerically("<=", first.rss*1.25), "resident memory grew")
}
