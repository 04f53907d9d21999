package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// Sizes of BenchmarkControllerMemory (issue 11 item 14): StageSets of one
// one-object stage, beside ConfigMaps and Secrets no StageSet names.
const (
	memoryStageSets = 1000
	memoryUnrelated = 10000
	memoryNamespace = 10
)

// BenchmarkControllerMemory runs the controller binary as a separate process
// against the test API server holding memoryUnrelated ConfigMaps and Secrets,
// with memoryStageSets StageSets, and reports the time until all are Ready
// and the process's peak RSS (VmHWM). The binary is built from this tree,
// or is $STAGESET_BENCH_BINARY (another build, to compare); the flags it is
// given are $STAGESET_BENCH_ARGS, by default those this tree needs out of a
// cluster. It measures once per process whatever b.N is (-benchtime=3x
// calls it twice), and reports the same figures on every call.
func BenchmarkControllerMemory(b *testing.B) {
	if memory == nil {
		memory = measureMemory(b)
	}
	b.ReportMetric(memory.elapsed.Seconds(), "s-to-ready")
	b.ReportMetric(float64(memory.hwm)/1024, "MiB-peak-RSS")
	b.ReportMetric(float64(memory.rss)/1024, "MiB-RSS")
}

// memoryFigures are what BenchmarkControllerMemory measured.
type memoryFigures struct {
	elapsed  time.Duration
	hwm, rss int64
}

var memory *memoryFigures

func measureMemory(b *testing.B) *memoryFigures {
	ctx := context.Background()
	dir := b.TempDir()
	binary := os.Getenv("STAGESET_BENCH_BINARY")
	if binary == "" {
		var err error
		if binary, err = testenv.BuildController(dir); err != nil {
			b.Fatal(err)
		}
	}
	args := strings.Fields(os.Getenv("STAGESET_BENCH_ARGS"))
	if len(args) == 0 {
		args = []string{"--integrity-key-secret=kube-system/stageset-bench-key"}
	}

	// The set-up is not measured: no client-side rate limit.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS = -1
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	namespaces := make([]string, memoryNamespace)
	for i := range namespaces {
		namespaces[i] = env.NewNamespace(b)
	}
	parallel(b, memoryUnrelated, func(i int) error {
		ns := namespaces[i%len(namespaces)]
		meta := metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("unrelated-%d", i)}
		if i%2 == 0 {
			return c.Create(ctx, &corev1.ConfigMap{ObjectMeta: meta, Data: map[string]string{"k": strings.Repeat("v", 512)}})
		}
		return c.Create(ctx, &corev1.Secret{ObjectMeta: meta, Data: map[string][]byte{"k": []byte(strings.Repeat("v", 512))}})
	})
	for _, ns := range namespaces {
		artifact, err := env.Artifacts.Publish(ns+"/rev-1.tar.gz", "rev-1", map[string]string{
			"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-${name}\ndata:\n  v: \"1\"\n",
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := env.CreateSource(ctx, stagesetv1.GitRepositoryKind, ns, "repo", artifact); err != nil {
			b.Fatal(err)
		}
	}
	parallel(b, memoryStageSets, func(i int) error {
		ns := namespaces[i%len(namespaces)]
		name := fmt.Sprintf("app-%d", i)
		return c.Create(ctx, &stagesetv1.StageSet{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: stagesetv1.StageSetSpec{
				Interval:        metav1.Duration{Duration: time.Hour},
				SourceRef:       &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
				TargetNamespace: ns,
				Stages: []stagesetv1.Stage{{Name: "app", Path: "./", PostBuild: &stagesetv1.PostBuild{
					Substitute: map[string]string{"name": name},
				}}},
			},
		})
	})

	kubeconfig, err := env.Kubeconfig("bench-controller")
	if err != nil {
		b.Fatal(err)
	}
	kubeconfigPath := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"--kubeconfig=" + kubeconfigPath,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--log-level=error", "--enable-webhook=false"}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	deadline := time.Now().Add(15 * time.Minute)
	for {
		var list stagesetv1.StageSetList
		if err := c.List(ctx, &list); err != nil {
			b.Fatal(err)
		}
		ready := 0
		for i := range list.Items {
			if testenv.ReadyReason(&list.Items[i]) == "True/Succeeded" {
				ready++
			}
		}
		if ready >= memoryStageSets {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d StageSets Ready after 15 minutes", ready, memoryStageSets)
		}
		time.Sleep(time.Second)
	}
	elapsed := time.Since(started)
	hwm, rss := procMemory(b, cmd.Process.Pid)
	return &memoryFigures{elapsed: elapsed, hwm: hwm, rss: rss}
}

// parallel runs f(0..n-1) on 8 workers and fails b on the first error.
func parallel(b *testing.B, n int, f func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// procMemory returns VmHWM and VmRSS of a process, in KiB.
func procMemory(b *testing.B, pid int) (hwm, rss int64) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}
