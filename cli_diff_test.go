package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/cli"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// exitCode is the code the CLI would exit with for err.
func exitCode(err error) int {
	var exit *cli.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.Code
	}
	return 1
}

// checkout writes files into a new directory, as a local checkout.
func checkout(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func namedConfigMap(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  v: " + value + "\n"
}

// stagesetctl diff of a Ready StageSet against the revision it applied
// finds nothing (exit 0); against a checkout that changes a value, adds an
// object and drops one, it prints the diff, the object it would create and
// the one it would prune (exit 1), and writes nothing.
func TestStagesetctlDiff(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	rev1 := map[string]string{"app/cm.yaml": appConfigMap("one"), "app/old.yaml": namedConfigMap("old", "x")}
	publishRepo(t, ns, "rev-1", rev1)
	obj := newStageSet(ns, stagesetv1.Stage{Name: "app", Path: "./app"})
	g.Expect(env.Client.Create(ctx, obj)).To(Succeed())
	startController(t)
	g.Eventually(readyOf(g, obj), testenv.Timeout, testenv.Poll).Should(Equal("True/Succeeded"))

	// The artifact the StageSet applied, downloaded.
	out, err := stagesetctl(t, "diff", "app", "-n", ns)
	g.Expect(exitCode(err)).To(Equal(0), "%v\n%s", err, out)
	g.Expect(out).To(Equal("✔ no changes\n"))
	// The same content from a checkout.
	out, err = stagesetctl(t, "diff", "app", "-n", ns, "--path", checkout(t, rev1))
	g.Expect(exitCode(err)).To(Equal(0), "%v\n%s", err, out)

	changed := checkout(t, map[string]string{"app/cm.yaml": appConfigMap("two"), "app/new.yaml": namedConfigMap("new", "y")})
	out, err = stagesetctl(t, "diff", "app", "-n", ns, "--path", changed)
	g.Expect(exitCode(err)).To(Equal(1), "%v\n%s", err, out)
	g.Expect(err.Error()).To(Equal("exit status 1"))
	g.Expect(errors.Unwrap(err)).To(BeNil(), "nothing more to print than the diff")
	g.Expect(out).To(ContainSubstring("► ConfigMap/" + ns + "/app configured\n--- live\n+++ dry-run\n"))
	g.Expect(out).To(ContainSubstring("\n-  v: one\n+  v: two\n"))
	g.Expect(out).To(ContainSubstring("► ConfigMap/" + ns + "/new created\n"))
	g.Expect(out).To(ContainSubstring("► ConfigMap/" + ns + "/old would be pruned\n"))
	g.Expect(out).To(HaveSuffix("► stages that would change: app\n"))
	g.Expect(out).NotTo(ContainSubstring("resourceVersion"), "bookkeeping fields are not diffed")
	g.Expect(out).NotTo(ContainSubstring("\x1b["), "no colors off a terminal")

	live := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "app"}, live)).To(Succeed())
	g.Expect(live.Data).To(Equal(map[string]string{"v": "one"}), "diff writes nothing")
	err = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "new"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "diff creates nothing")
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "old"}, &corev1.ConfigMap{})).To(Succeed(), "diff prunes nothing")

	// An object kept by stageset.io/prune: disabled is not pruned.
	old := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "old"}, old)).To(Succeed())
	old.Annotations = map[string]string{stagesetv1.PruneAnnotation: stagesetv1.DisabledValue}
	g.Expect(env.Client.Update(ctx, old)).To(Succeed())
	out, err = stagesetctl(t, "diff", "app", "-n", ns, "--path", changed)
	g.Expect(exitCode(err)).To(Equal(1), "%v\n%s", err, out)
	g.Expect(out).NotTo(ContainSubstring("old would be pruned"))

	_, err = stagesetctl(t, "diff", "app", "-n", ns, "--path", changed, "--stage", "nope")
	g.Expect(exitCode(err)).To(Equal(2))
	g.Expect(err).To(MatchError(ContainSubstring(`has no stage "nope" (its stages: app)`)))
}

// diff exits 2 on any error: a missing StageSet, a cluster it cannot
// reach.
func TestStagesetctlDiffErrors(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)

	_, err := stagesetctl(t, "diff", "missing", "-n", ns)
	g.Expect(exitCode(err)).To(Equal(2))
	g.Expect(err).To(MatchError(ContainSubstring(`"missing" not found`)))

	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	g.Expect(os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: nope}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
`), 0o600)).To(Succeed())
	var out, errOut bytes.Buffer
	code := cli.Main("stagesetctl", []string{"diff", "app", "--kubeconfig", kubeconfig}, &out, &errOut)
	g.Expect(code).To(Equal(2))
	g.Expect(errOut.String()).To(HavePrefix("✗ cannot reach the cluster"))
	g.Expect(strings.Count(errOut.String(), "\n")).To(Equal(1))
}

// stagesetctl build NAME downloads the artifact the source serves and
// renders what the controller applied from it.
func TestStagesetctlBuildDownloadsTheArtifact(t *testing.T) {
	g := NewWithT(t)
	obj := readyApp(t, g)

	out, err := stagesetctl(t, "build", "app", "-n", obj.Namespace)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(HavePrefix("# Stage: app\n---\n"))
	built := &corev1.ConfigMap{}
	g.Expect(yaml.UnmarshalStrict([]byte(strings.TrimPrefix(out, "# Stage: app\n---\n")), built)).To(Succeed())

	live := &corev1.ConfigMap{}
	g.Expect(env.Client.Get(context.Background(), client.ObjectKey{Namespace: obj.Namespace, Name: "app"}, live)).To(Succeed())
	g.Expect(built.Namespace).To(Equal(live.Namespace))
	g.Expect(built.Data).To(Equal(live.Data))
}
