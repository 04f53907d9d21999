package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/cli"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// stagesetctl runs the CLI against the test API server as an admin user.
func stagesetctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := stagesetctlUntil(context.Background(), t, &out, args...)
	return out.String(), err
}

// stagesetctlUntil runs the CLI as an admin user until ctx is done,
// writing to out (for --watch, which only ends when interrupted).
func stagesetctlUntil(ctx context.Context, t *testing.T, out io.Writer, args ...string) error {
	t.Helper()
	data, err := env.Kubeconfig("stagesetctl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := cli.NewRootCommand(out)
	cmd.SetArgs(append(args, "--kubeconfig", path))
	return cmd.ExecuteContext(ctx)
}

// readyApp creates StageSet "app" over rev-1 in a new namespace, starts the
// controller with args and waits for it to be Ready.
func readyApp(t *testing.T, g Gomega, args ...string) *stagesetv1.StageSet {
	t.Helper()
	ns := env.NewNamespace(t)
	publishRepo(t, ns, "rev-1", map[string]string{"app/cm.yaml": appConfigMap("one")})
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
	g.Expect(env.Client.Create(context.Background(), obj)).To(Succeed())
	startController(t, args...)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))
	return obj
}

// stagesetctl reconcile stamps a request, waits for the controller to
// handle it and reports the outcome: the applied revision, or the Ready
// message with its runbook link as the error.
func TestStagesetctlReconcile(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := readyApp(t, g, "--runbook-base-url=https://runbooks.example.com/stageset")
	ns := obj.Namespace

	out, err := stagesetctl(t, "reconcile", "app", "-n", ns, "--timeout=1m")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("✔ applied revision rev-1"))
	g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
	g.Expect(obj.Status.LastHandledReconcileAt).NotTo(BeEmpty())
	g.Expect(obj.Annotations).To(HaveKeyWithValue("reconcile.fluxcd.io/requestedAt", obj.Status.LastHandledReconcileAt))

	// A revision that fails: the stage's progress, then the Ready message
	// with its runbook link, as the error.
	publishRepo(t, ns, "rev-2", map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"})
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/BuildFailed"))
	out, err = stagesetctl(t, "reconcile", "app", "-n", ns, "--timeout=1m")
	g.Expect(err).To(MatchError(And(HavePrefix("BuildFailed: "), HaveSuffix("(runbook: https://runbooks.example.com/stageset/buildfailed/)"))), out)

	_, err = stagesetctl(t, "reconcile", "nothing", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/nothing not found"))
	g.Expect(env.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`)))).To(Succeed())
	_, err = stagesetctl(t, "reconcile", "app", "-n", ns)
	g.Expect(err).To(MatchError(ContainSubstring("is suspended")))
}

// --force passes a closed update window once: the deferred revision rolls
// out and reconcile reports it.
func TestStagesetctlReconcileForcePassesAClosedWindow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := readyApp(t, g)
	ns := obj.Namespace

	// Always closed from now on: a deny window open all the time.
	g.Expect(env.Client.Patch(ctx, obj, client.RawPatch(types.MergePatchType,
		[]byte(`{"spec":{"updateWindows":[{"type":"Deny","schedule":"* * * * *","duration":"1h"}]}}`)))).To(Succeed())
	publishRepo(t, ns, "rev-2", map[string]string{"app/cm.yaml": appConfigMap("two")})
	g.Eventually(func() *stagesetv1.PendingUpdate {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return obj.Status.PendingUpdate
	}, testenv.Timeout, testenv.Poll).ShouldNot(BeNil())

	out, err := stagesetctl(t, "reconcile", "app", "-n", ns, "--timeout=1m")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("✔ applied revision rev-1"), "without --force the window holds")

	out, err = stagesetctl(t, "reconcile", "app", "-n", ns, "--force", "--timeout=1m")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("✔ applied revision rev-2"))
	g.Expect(out).To(ContainSubstring("stage app: Ready"))
}

// suspend stops runs; resume lifts it and waits for the next run's outcome,
// as flux suspend/resume do; --all takes every StageSet of the namespace.
func TestStagesetctlSuspendResume(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	obj := readyApp(t, g)
	ns := obj.Namespace

	out, err := stagesetctl(t, "suspend", "app", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("False/Suspended"))
	g.Expect(obj.Spec.Suspend).To(BeTrue())

	// A new revision waits while suspended, and rolls out on resume.
	publishRepo(t, ns, "rev-2", map[string]string{"app/cm.yaml": appConfigMap("two")})
	g.Consistently(func() string {
		g.Expect(env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		return obj.Status.LastAppliedRevision
	}, "2s", testenv.Poll).Should(Equal("rev-1"))
	out, err = stagesetctl(t, "resume", "--all", "-n", ns, "--timeout=1m")
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(ContainSubstring("✔ applied revision rev-2"))
	g.Expect(readyOf(g, obj)()).To(Equal("True/Succeeded"))
	g.Expect(obj.Spec.Suspend).To(BeFalse())

	_, err = stagesetctl(t, "suspend", "-n", ns)
	g.Expect(err).To(MatchError("suspend needs a StageSet name or --all, not both"))
	_, err = stagesetctl(t, "resume", "nothing", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/nothing not found"))
}

// --with-source asks the source for a new fetch first, waits for its new
// artifact, then reconciles the StageSet, which rolls that artifact out. A
// suspended source is refused with the command that resumes it.
func TestStagesetctlReconcileWithSource(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	obj := readyApp(t, g)
	ns := obj.Namespace

	// This plays source-controller: a request stamped on the GitRepository
	// is handled by publishing rev-2.
	artifact, err := env.Artifacts.Publish(ns+"/repo/rev-2.tar.gz", "rev-2", map[string]string{"app/cm.yaml": appConfigMap("two")})
	g.Expect(err).NotTo(HaveOccurred())
	go func() {
		for ctx.Err() == nil {
			repo := &sourcev1.GitRepository{}
			if env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "repo"}, repo) == nil {
				if req := repo.Annotations["reconcile.fluxcd.io/requestedAt"]; req != "" && repo.Status.LastHandledReconcileAt != req {
					repo.Status.LastHandledReconcileAt = req
					_ = testenv.SetArtifact(ctx, env.Client, repo, artifact)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()

	out, err := stagesetctl(t, "reconcile", "app", "-n", ns, "--with-source", "--timeout=1m")
	g.Expect(err).NotTo(HaveOccurred(), out)
	fetched := strings.Index(out, "✔ fetched revision rev-2")
	g.Expect(fetched).To(BeNumerically(">", strings.Index(out, "► annotating GitRepository/"+ns+"/repo")), out)
	g.Expect(strings.Index(out, "► annotating StageSet")).To(BeNumerically(">", fetched), out)
	g.Expect(out).To(ContainSubstring("✔ applied revision rev-2"))

	cancel()
	g.Expect(env.Client.Patch(context.Background(), &sourcev1.GitRepository{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "repo"}},
		client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":true}}`)))).To(Succeed())
	_, err = stagesetctl(t, "reconcile", "app", "-n", ns, "--with-source")
	g.Expect(err).To(MatchError("GitRepository/" + ns + "/repo is suspended: resume it first (flux resume source git repo -n " + ns + ")"))
}
