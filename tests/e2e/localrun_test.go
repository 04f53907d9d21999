package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/localcluster"
	"github.com/stageset/stageset-controller/internal/scheme"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// userRepo writes a repository of the user's own, not the sample: a stage
// creating a namespace, then a stage with a ConfigMap in it, and a StageSet
// file for it in a namespace of its own that does not exist yet. It returns
// the directory, the StageSet file, the StageSet's namespace and the app's.
func userRepo(t *testing.T) (dir, stageSetFile, ns, appNS string) {
	t.Helper()
	ns, appNS = testenv.RandomName("localrun"), testenv.RandomName("localrun-app")
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "infra", "namespace.yaml"), fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", appNS))
	writeFile(t, filepath.Join(dir, "app", "settings.yaml"), settings("hello"))
	// What source-controller leaves out of the artifact stays out here.
	writeFile(t, filepath.Join(dir, ".git", "HEAD"), "ref: refs/heads/main\n")
	stageSetFile = filepath.Join(t.TempDir(), "my-stageset.yaml")
	writeFile(t, stageSetFile, fmt.Sprintf(`apiVersion: stageset.io/v1
kind: StageSet
metadata:
  name: web
  namespace: %s
spec:
  interval: 10m
  retryInterval: 2s
  timeout: 1m
  sourceRef:
    kind: GitRepository
    name: web-repo
  stages:
    - name: infra
      path: ./infra
      prune: false
    - name: app
      path: ./app
      targetNamespace: %s
`, ns, appNS))
	return dir, stageSetFile, ns, appNS
}

func settings(greeting string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  greeting: " + greeting + "\n"
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func greeting(g Gomega, ns string) func() string {
	return func() string {
		cm := &corev1.ConfigMap{}
		if err := cluster.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "settings"}, cm); err != nil {
			return err.Error()
		}
		return cm.Data["greeting"]
	}
}

func demoOptions(out *testenv.Buffer, dir, stageSetFile string) localcluster.DemoOptions {
	return localcluster.DemoOptions{
		Root: testenv.RepoRoot(), Scheme: scheme.New(), Out: out, Timeout: time.Minute,
		SourceDir: dir, StageSetFile: stageSetFile, Cluster: cluster,
	}
}

// `make run --source-dir DIR --stageset FILE` serves the user's directory
// as the GitRepository the user's StageSet names, in the StageSet's own
// namespace, and brings it to Ready stage by stage.
func TestLocalRunServesTheUsersDirectory(t *testing.T) {
	g := NewWithT(t)
	dir, stageSetFile, ns, appNS := userRepo(t)
	out := &testenv.Buffer{}
	opts := demoOptions(out, dir, stageSetFile)
	opts.ExitWhenReady = true
	g.Expect(localcluster.RunDemo(context.Background(), opts)).To(Succeed(), out.String())

	g.Expect(greeting(g, appNS)()).To(Equal("hello"))
	for _, line := range []string{
		fmt.Sprintf("==> published %s as GitRepository %s/web-repo, revision local@sha256:", dir, ns),
		fmt.Sprintf("==> applied %s: StageSet %s/web with 2 stages", stageSetFile, ns),
		"stage infra     Ready", "stage app       Ready",
		"Ready=True Succeeded: Applied revision: local@sha256:",
		fmt.Sprintf("bin/stagesetctl get -n %s web -o yaml", ns),
	} {
		g.Expect(out.String()).To(ContainSubstring(line))
	}
}

// With --watch, a change in the directory publishes a new revision that
// rolls out; a manifest that does not build is reported with the
// controller's message naming the stage, and the watch goes on.
func TestLocalRunWatchRollsOutAChange(t *testing.T) {
	g := NewWithT(t)
	dir, stageSetFile, _, appNS := userRepo(t)
	out := &testenv.Buffer{}
	opts := demoOptions(out, dir, stageSetFile)
	opts.Watch = true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- localcluster.RunDemo(ctx, opts) }()

	g.Eventually(greeting(g, appNS), timeout, poll).Should(Equal("hello"), out.String)
	g.Eventually(out.String, timeout, poll).Should(ContainSubstring("◎ watching"))
	writeFile(t, filepath.Join(dir, "app", "settings.yaml"), settings("bonjour"))
	g.Eventually(greeting(g, appNS), timeout, poll).Should(Equal("bonjour"), out.String)
	g.Eventually(out.String, timeout, poll).Should(MatchRegexp(`changed: published revision (local@sha256:\w+), an update rolls out\n(.|\n)*✔ revision local@sha256:\w+ is Ready`))

	writeFile(t, filepath.Join(dir, "app", "broken.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, map]\n")
	g.Eventually(out.String, timeout, poll).Should(MatchRegexp(`Ready=False BuildFailed: stage "app": .*app/broken.yaml(.|\n)*✗ revision local@sha256:\w+ failed: BuildFailed\n`))

	cancel()
	select {
	case err := <-done:
		g.Expect(err).NotTo(HaveOccurred(), out.String())
	case <-time.After(30 * time.Second):
		t.Fatal("RunDemo did not return after its context was cancelled")
	}
	if strings.Count(out.String(), "an update rolls out") != 2 {
		t.Errorf("want two updates published, got:\n%s", out.String())
	}
}
