package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/cli"
	"github.com/stageset/stageset-controller/internal/stagesetfile"
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
	// Timeout bounds the wait for Ready (of every revision, with Watch).
	Timeout time.Duration
	// ControllerBinary is the controller to run; bin/stageset-controller of
	// Root when empty.
	ControllerBinary string
	// SourceDir is served as the artifact of every source the StageSet
	// reads; config/samples/shop of Root when empty.
	SourceDir string
	// StageSetFile holds the StageSet to apply;
	// config/samples/stageset_shop.yaml of Root when empty.
	StageSetFile string
	// Watch publishes a new revision on every change in SourceDir and
	// streams its rollout, until ctx is done.
	Watch bool
	// Cluster is a running control plane with the controller already
	// running against it, used instead of starting both (the end-to-end
	// tests share theirs). RunDemo leaves it running.
	Cluster *Cluster
}

// The sample of config/samples: a StageSet over a GitRepository serving
// config/samples/shop. Every revision published is named after the digest
// of its tarball.
const sampleRevision = "local@sha256:"

// RunDemo starts the local control plane and the controller binary, serves
// the source directory (the sample repository by default) as the artifact
// of the sources the StageSet names, applies the StageSet (the sample by
// default) and streams its progress stage by stage; with Watch, every
// change in the directory is published and rolled out in turn.
func RunDemo(ctx context.Context, opts DemoOptions) error {
	if opts.Watch && opts.ExitWhenReady {
		return errors.New("watching the source directory and exiting once Ready exclude each other")
	}
	out := opts.Out
	started := time.Now()
	sourceDir, stageSetFile := opts.SourceDir, opts.StageSetFile
	if sourceDir == "" {
		sourceDir = filepath.Join(opts.Root, "config", "samples", "shop")
	}
	if stageSetFile == "" {
		stageSetFile = filepath.Join(opts.Root, "config", "samples", "stageset_shop.yaml")
	}
	// A mistake in the user's files is reported before the control plane
	// takes seconds to start.
	obj, err := stagesetfile.Load(stageSetFile, relativeTo(opts.Root, stageSetFile), "default")
	if err != nil {
		return err
	}
	if _, err := readSourceDir(sourceDir); err != nil {
		return err
	}

	cluster := opts.Cluster
	var controllerLog *os.File
	if cluster == nil {
		runDir := filepath.Join(opts.Root, "bin", "run")
		if err := os.MkdirAll(runDir, 0o755); err != nil {
			return err
		}
		clusterLog, err := os.Create(filepath.Join(runDir, "cluster.log"))
		if err != nil {
			return err
		}
		defer clusterLog.Close()
		if controllerLog, err = os.Create(filepath.Join(runDir, "controller.log")); err != nil {
			return err
		}
		defer controllerLog.Close()

		fmt.Fprintln(out, "==> starting the local control plane: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok")
		cluster, err = Start(ctx, Options{
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
	}

	artifacts, err := testenv.NewArtifactServer()
	if err != nil {
		return err
	}
	defer artifacts.Close()
	if err := ensureNamespace(ctx, cluster.Client, obj.Namespace); err != nil {
		return err
	}
	src := &localSource{dir: sourceDir, c: cluster.Client, artifacts: artifacts}
	refs := obj.GetSourceRefs()
	revision, err := src.createSources(ctx, refs)
	if err != nil {
		return err
	}
	for _, ref := range refs {
		fmt.Fprintf(out, "==> published %s as %s %s/%s, revision %s\n", relativeTo(opts.Root, sourceDir), ref.Kind, ref.Namespace, ref.Name, revision)
	}

	if opts.Cluster == nil {
		binary := opts.ControllerBinary
		if binary == "" {
			binary = filepath.Join(opts.Root, "bin", "stageset-controller")
		}
		if err := cluster.StartController(binary, controllerLog,
			"--metrics-bind-address=0", "--health-probe-bind-address=0", "--enable-webhook=false", "--requeue-dependency=2s"); err != nil {
			return err
		}
		fmt.Fprintf(out, "==> started bin/stageset-controller (logs: %s)\n", controllerLog.Name())
	}

	if err := cluster.Client.Create(ctx, obj); err != nil {
		return fmt.Errorf("%s: creating the StageSet: %w", relativeTo(opts.Root, stageSetFile), err)
	}
	fmt.Fprintf(out, "==> applied %s: StageSet %s/%s with %d stages\n", relativeTo(opts.Root, stageSetFile), obj.Namespace, obj.Name, len(obj.Spec.Stages))

	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	if opts.Watch {
		f := &follower{c: cluster.Client, out: out, obj: obj, src: src, dir: relativeTo(opts.Root, sourceDir),
			kubeconfig: cluster.KubeconfigPath, timeout: timeout, progress: newProgress(out, started)}
		return f.run(ctx, revision)
	}
	if err := watchProgress(ctx, cluster.Client, obj, out, started, timeout); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nThe StageSet is Ready:\n\n")
	if err := printGet(ctx, out, cluster.KubeconfigPath); err != nil {
		return err
	}
	printInspect(out, cluster.KubeconfigPath, obj)
	if opts.ExitWhenReady {
		return nil
	}
	fmt.Fprintln(out, "Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return nil
}

// printGet prints `stagesetctl get -A` of the cluster.
func printGet(ctx context.Context, out io.Writer, kubeconfig string) error {
	get := cli.NewRootCommand(out)
	get.SetArgs([]string{"get", "-A", "--kubeconfig", kubeconfig})
	return get.ExecuteContext(ctx)
}

// printInspect tells how to look at the StageSet with stagesetctl.
func printInspect(out io.Writer, kubeconfig string, obj *stagesetv1.StageSet) {
	fmt.Fprintf(out, `
Inspect it with the local cluster's admin kubeconfig:
  export KUBECONFIG=%s
  bin/stagesetctl get -n %s %s -o yaml
The objects it applied carry the labels stageset.io/name=%s and stageset.io/stage=<stage>.
`, kubeconfig, obj.Namespace, obj.Name, obj.Name)
}

// relativeTo returns path relative to root when it is inside root (the
// sample, a directory of the checkout given to `make run`), else as is.
func relativeTo(root, path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	rootAbs, err := filepath.Abs(root)
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(rootAbs, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return rel
	}
	return path
}

// progress prints a line whenever a stage's phase or the Ready condition
// changes, with the time since the start.
type progress struct {
	out     io.Writer
	started time.Time
	// seen holds the state last printed per key; it also holds the
	// revision, so that a stage that goes through an update unseen between
	// two polls is printed again.
	seen map[string]string
}

func newProgress(out io.Writer, started time.Time) *progress {
	return &progress{out: out, started: started, seen: map[string]string{}}
}

func (p *progress) report(key, state, line string) {
	if p.seen[key] != state+line {
		p.seen[key] = state + line
		fmt.Fprintf(p.out, "[%6.1fs] %s\n", time.Since(p.started).Seconds(), line)
	}
}

// stages prints what changed in the StageSet's status; it returns Ready once
// the controller decided it for the current generation, else nil.
func (p *progress) stages(obj *stagesetv1.StageSet) *metav1.Condition {
	for _, st := range obj.Status.Stages {
		p.report("stage/"+st.Name, st.Revision, fmt.Sprintf("stage %-9s %-10s %s", st.Name, st.Phase, st.Message))
	}
	ready := conditions.Get(obj, meta.ReadyCondition)
	if ready == nil || obj.Status.ObservedGeneration != obj.Generation {
		return nil
	}
	p.report("ready", "", fmt.Sprintf("Ready=%s %s: %s", ready.Status, ready.Reason, ready.Message))
	return ready
}

// watchProgress prints every change of a stage's phase and of the Ready
// condition until the StageSet is Ready, fails for good (Stalled), or the
// timeout passes.
func watchProgress(ctx context.Context, c client.Client, obj *stagesetv1.StageSet, out io.Writer, started time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	p := newProgress(out, started)
	for {
		if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		if ready := p.stages(obj); ready != nil {
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
