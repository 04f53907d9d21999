package localcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/cli"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// DemoOptions configure the `make run` demo.
type DemoOptions struct {
	// Root is the project checkout (samples, CRDs, bin/).
	Root string
	// Scheme for the cluster client.
	Scheme *runtime.Scheme
	// Out receives the progress.
	Out io.Writer
	// ExitWhenReady ends the demo once the StageSet is Ready instead of
	// running until ctx is done.
	ExitWhenReady bool
	// Timeout bounds the wait for Ready.
	Timeout time.Duration
	// ControllerBinary is the controller to run; bin/stageset-controller of
	// Root when empty.
	ControllerBinary string
}

// The sample of config/samples: a StageSet over a GitRepository serving
// config/samples/shop.
const (
	sampleNamespace = "default"
	sampleSource    = "shop"
	sampleRevision  = "local@sha256:"
)

// RunDemo starts the local control plane and the controller binary, publishes
// the sample repository as a GitRepository artifact, applies the sample
// StageSet and streams its progress stage by stage.
func RunDemo(ctx context.Context, opts DemoOptions) error {
	out := opts.Out
	started := time.Now()
	runDir := filepath.Join(opts.Root, "bin", "run")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	clusterLog, err := os.Create(filepath.Join(runDir, "cluster.log"))
	if err != nil {
		return err
	}
	defer clusterLog.Close()
	controllerLog, err := os.Create(filepath.Join(runDir, "controller.log"))
	if err != nil {
		return err
	}
	defer controllerLog.Close()

	fmt.Fprintln(out, "==> starting the local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
	cluster, err := Start(ctx, Options{
		BinDir:   testenv.AssetsDirFor(opts.Root),
		KwokDir:  KwokDir(opts.Root),
		CRDPaths: testenv.CRDPathsFor(opts.Root),
		Scheme:   opts.Scheme,
		Logs:     clusterLog,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "==> stopping")
		_ = cluster.Stop()
	}()
	fmt.Fprintf(out, "    up in %s (logs: %s)\n", time.Since(started).Round(100*time.Millisecond), clusterLog.Name())

	artifacts, err := testenv.NewArtifactServer()
	if err != nil {
		return err
	}
	defer artifacts.Close()
	files, err := testenv.FilesFromDir(filepath.Join(opts.Root, "config", "samples", "shop"))
	if err != nil {
		return err
	}
	tarball, err := testenv.Tarball(files)
	if err != nil {
		return err
	}
	revision := sampleRevision + shortDigest(tarball)
	artifact := artifacts.PublishRaw("gitrepository/default/shop/latest.tar.gz", revision, tarball)
	if _, err := testenv.CreateSource(ctx, cluster.Client, stagesetv1.GitRepositoryKind, sampleNamespace, sampleSource, artifact); err != nil {
		return fmt.Errorf("creating the GitRepository: %w", err)
	}
	fmt.Fprintf(out, "==> published config/samples/shop as GitRepository %s/%s, revision %s\n", sampleNamespace, sampleSource, revision)

	binary := opts.ControllerBinary
	if binary == "" {
		binary = filepath.Join(opts.Root, "bin", "stageset-controller")
	}
	if err := cluster.StartController(binary, controllerLog,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--enable-webhook=false", "--requeue-dependency=2s"); err != nil {
		return err
	}
	fmt.Fprintf(out, "==> started bin/stageset-controller (logs: %s)\n", controllerLog.Name())

	obj, err := applySample(ctx, cluster.Client, filepath.Join(opts.Root, "config", "samples", "stageset_shop.yaml"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "==> applied config/samples/stageset_shop.yaml: StageSet %s/%s with %d stages\n", obj.Namespace, obj.Name, len(obj.Spec.Stages))

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	if err := watchProgress(ctx, cluster.Client, obj, out, started, timeout); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nThe StageSet is Ready:\n\n")
	get := cli.NewRootCommand(out)
	get.SetArgs([]string{"get", "-A", "--kubeconfig", cluster.KubeconfigPath})
	if err := get.ExecuteContext(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, `
Inspect it with the local cluster's admin kubeconfig:
  export KUBECONFIG=%s
  bin/stagesetctl get -n %s %s -o yaml
The objects it applied carry the labels stageset.io/name=%s and stageset.io/stage=<stage>.
`, cluster.KubeconfigPath, obj.Namespace, obj.Name, obj.Name)
	if opts.ExitWhenReady {
		return nil
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return nil
}

func applySample(ctx context.Context, c client.Client, path string) (*stagesetv1.StageSet, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := &stagesetv1.StageSet{}
	if err := yaml.UnmarshalStrict(data, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := c.Create(ctx, obj); err != nil {
		return nil, fmt.Errorf("creating the sample StageSet: %w", err)
	}
	return obj, nil
}

// watchProgress prints every change of a stage's phase and of the Ready
// condition until the StageSet is Ready, fails for good (Stalled), or the
// timeout passes.
func watchProgress(ctx context.Context, c client.Client, obj *stagesetv1.StageSet, out io.Writer, started time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	seen := map[string]string{}
	report := func(key, line string) {
		if seen[key] != line {
			seen[key] = line
			fmt.Fprintf(out, "[%6.1fs] %s\n", time.Since(started).Seconds(), line)
		}
	}
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		for _, st := range obj.Status.Stages {
			report("stage/"+st.Name, fmt.Sprintf("stage %-9s %-10s %s", st.Name, st.Phase, st.Message))
		}
		if ready := conditions.Get(obj, meta.ReadyCondition); ready != nil && obj.Status.ObservedGeneration == obj.Generation {
			report("ready", fmt.Sprintf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message))
			if conditions.IsReady(obj) {
				return nil
			}
			if conditions.IsStalled(obj) {
				return fmt.Errorf("the StageSet is stalled: %s", ready.Message)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the StageSet is not Ready after %s: %s", timeout,
				strings.TrimSpace(conditions.GetMessage(obj, meta.ReadyCondition)))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func shortDigest(data []byte) string {
	a := testenv.Digest(data)
	return a[strings.Index(a, ":")+1:][:12]
}
