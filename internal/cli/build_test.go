package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// noClusterKubeconfig writes a kubeconfig whose server is a closed port.
func noClusterKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	data := `apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: none, user: {token: nope}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: apps}}]
current-context: none
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runOffline runs the CLI against a cluster that cannot be reached and
// returns its output and its error output.
func runOffline(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := NewRootCommand(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(append(args, "--kubeconfig", noClusterKubeconfig(t)))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

const (
	buildStageSet = "testdata/build-stageset.yaml"
	buildRepo     = "testdata/build-repo"
)

// With -f and --path, build needs no cluster: the stages come out in
// rollout order with the controller's build (generated kustomization,
// target namespace, patches, substitution, migrations first), and the
// substituteFrom referent it could not read is named on stderr.
func TestBuildWithoutCluster(t *testing.T) {
	g := NewWithT(t)
	out, errOut, err := runOffline(t, "build", "-f", buildStageSet, "--path", buildRepo)
	g.Expect(err).NotTo(HaveOccurred(), errOut)
	golden(t, "build.golden", out)
	g.Expect(errOut).To(HavePrefix("⚠ building without a cluster: "))
	g.Expect(errOut).To(ContainSubstring("127.0.0.1:1"))
	g.Expect(errOut).To(HaveSuffix("\n⚠ stage \"app\": substituteFrom ConfigMap/vars not read: its variables are unset\n"))
	g.Expect(out).To(ContainSubstring("greeting: hello"), "postBuild.substitute applies")
	g.Expect(out).To(ContainSubstring("region: eu"), "${var:=default} takes its default")
	g.Expect(out).To(ContainSubstring("patched: \"yes\""), "the stage's patches apply")
	g.Expect(out).To(ContainSubstring("namespace: apps"), "the target namespace applies")
}

// Secret values are masked unless --show-secrets.
func TestBuildMasksSecrets(t *testing.T) {
	g := NewWithT(t)
	out, _, err := runOffline(t, "build", "-f", buildStageSet, "--path", buildRepo)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).NotTo(ContainSubstring("hunter2"))
	g.Expect(out).NotTo(ContainSubstring("YWRtaW4="))
	g.Expect(out).To(ContainSubstring("password: '***'"))

	out, _, err = runOffline(t, "build", "-f", buildStageSet, "--path", buildRepo, "--show-secrets")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("password: hunter2"))
	g.Expect(out).To(ContainSubstring("user: YWRtaW4="))
}

// --stage builds one stage; an unknown stage is refused with the stage
// names.
func TestBuildOneStage(t *testing.T) {
	g := NewWithT(t)
	out, _, err := runOffline(t, "build", "-f", buildStageSet, "--path", buildRepo, "--stage", "app")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(HavePrefix("# Stage: app\n"))
	g.Expect(out).NotTo(ContainSubstring("# Stage: db"))
	g.Expect(out).NotTo(ContainSubstring("kind: Job"))

	_, _, err = runOffline(t, "build", "-f", buildStageSet, "--path", buildRepo, "--stage", "web")
	g.Expect(err).To(MatchError(`StageSet apps/shop has no stage "web" (its stages: db, app)`))
}

// A StageSet file the controller would refuse is refused with its field
// errors; so is a file that is not a StageSet, or has unknown fields.
func TestBuildRefusesAnInvalidStageSet(t *testing.T) {
	g := NewWithT(t)
	write := func(content string) string {
		path := filepath.Join(t.TempDir(), "stageset.yaml")
		g.Expect(os.WriteFile(path, []byte(content), 0o600)).To(Succeed())
		return path
	}
	data, err := os.ReadFile(buildStageSet)
	g.Expect(err).NotTo(HaveOccurred())

	escaping := write(strings.Replace(string(data), "path: ./db", "path: ../db", 1))
	_, _, err = runOffline(t, "build", "-f", escaping, "--path", buildRepo)
	g.Expect(err).To(HaveOccurred())
	// Reported as a compiler does, at the line to edit.
	g.Expect(err).To(MatchError(escaping + `:14: spec.stages[0].path: Invalid value: "../db": must not contain '..'`))

	noInterval := write(strings.Replace(string(data), "interval: 5m", "interval: 0s", 1))
	_, _, err = runOffline(t, "build", "-f", noInterval, "--path", buildRepo)
	g.Expect(err).To(MatchError(ContainSubstring("spec.interval: Invalid value")))

	unknown := write(strings.Replace(string(data), "interval: 5m", "interval: 5m\n  intervall: 5m", 1))
	_, _, err = runOffline(t, "build", "-f", unknown, "--path", buildRepo)
	g.Expect(err).To(MatchError(ContainSubstring(`unknown field "intervall"`)))

	notStageSet := write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
	_, _, err = runOffline(t, "build", "-f", notStageSet, "--path", buildRepo)
	g.Expect(err).To(MatchError(ContainSubstring(notStageSet + `:2: apiVersion "v1" kind "ConfigMap": expected apiVersion stageset.io/v1 and kind StageSet`)))

	_, _, err = runOffline(t, "build", "shop", "-f", buildStageSet)
	g.Expect(err).To(MatchError("give either a StageSet NAME or -f FILE"))
}

// A stage folder that leaves the checkout through a symlink is refused, as
// the controller refuses it in an artifact.
func TestBuildRefusesASymlinkOutOfThePath(t *testing.T) {
	g := NewWithT(t)
	outside := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(outside, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n"), 0o600)).To(Succeed())
	checkout := t.TempDir()
	g.Expect(os.Symlink(outside, filepath.Join(checkout, "db"))).To(Succeed())
	g.Expect(os.Mkdir(filepath.Join(checkout, "app"), 0o755)).To(Succeed())

	_, _, err := runOffline(t, "build", "-f", buildStageSet, "--path", checkout)
	g.Expect(err).To(MatchError(ContainSubstring(`stage "db": stage path "./db" escapes the artifact root through a symlink`)))
}

// Without --path, build reads the source from the cluster: with no cluster
// it says so and how to build from a checkout instead.
func TestBuildWithoutPathNeedsTheCluster(t *testing.T) {
	g := NewWithT(t)
	_, _, err := runOffline(t, "build", "-f", buildStageSet)
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(ContainSubstring("pass --path DIR"))
}

// A postBuild variable read from a Secret is masked wherever build prints
// it, a ConfigMap included, unless --show-secrets; diff masks it in its
// output.
func TestBuildMasksVariablesFromSecrets(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	g.Expect(env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds", Namespace: ns},
		StringData: map[string]string{"password": "hunter2-long"},
	})).To(Succeed())
	g.Expect(env.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vars", Namespace: ns},
		Data:       map[string]string{"region": "eu-west-9"},
	})).To(Succeed())
	dir := t.TempDir()
	g.Expect(os.MkdirAll(filepath.Join(dir, "app"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "app", "cm.yaml"), []byte(
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata:\n  dsn: \"db://app:${password}@db\"\n  region: ${region}\n"), 0o644)).To(Succeed())
	file := filepath.Join(dir, "stageset.yaml")
	g.Expect(os.WriteFile(file, []byte(`apiVersion: stageset.io/v1
kind: StageSet
metadata: {name: shop, namespace: `+ns+`}
spec:
  interval: 5m
  sourceRef: {kind: GitRepository, name: repo}
  stages:
    - name: app
      path: ./app
      postBuild:
        substituteFrom:
          - {kind: Secret, name: creds}
          - {kind: ConfigMap, name: vars}
`), 0o644)).To(Succeed())

	out, err := run(t, "build", "-f", file, "--path", dir)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).NotTo(ContainSubstring("hunter2"))
	g.Expect(out).To(ContainSubstring("dsn: db://app:***@db"))
	g.Expect(out).To(ContainSubstring("region: eu-west-9"), "a ConfigMap's variable is not masked")

	out, err = run(t, "build", "-f", file, "--path", dir, "--show-secrets")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("dsn: db://app:hunter2-long@db"))

	var diff bytes.Buffer
	p := &diffPrinter{out: &diff, secrets: []string{"hunter2-long", "on"}}
	live := diffConfigMap("db://app:old-one@db")
	g.Expect(p.diff("ConfigMap/apps/app", live, diffConfigMap("db://app:hunter2-long@db on"))).To(Succeed())
	g.Expect(diff.String()).NotTo(ContainSubstring("hunter2"))
	g.Expect(diff.String()).To(ContainSubstring("+  v: db://app:***@db on"))
}

// An object two stages build is refused, as the controller refuses it, and
// nothing is printed.
func TestBuildRefusesAnObjectOfTwoStages(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	g.Expect(os.MkdirAll(filepath.Join(dir, "app"), 0o755)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(dir, "app", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n"), 0o644)).To(Succeed())
	file := filepath.Join(dir, "stageset.yaml")
	g.Expect(os.WriteFile(file, []byte(`apiVersion: stageset.io/v1
kind: StageSet
metadata: {name: shop, namespace: apps}
spec:
  interval: 5m
  targetNamespace: apps
  sourceRef: {kind: GitRepository, name: repo}
  stages:
    - {name: one, path: ./app}
    - {name: two, path: ./app}
`), 0o644)).To(Succeed())

	out, _, err := runOffline(t, "build", "-f", file, "--path", dir)
	g.Expect(err).To(MatchError(`object ConfigMap/apps/web is claimed by stages "one" and "two"`))
	g.Expect(out).To(BeEmpty())
	_, _, err = runOffline(t, "build", "-f", file, "--path", dir, "--stage", "two")
	g.Expect(err).NotTo(HaveOccurred(), "one stage alone claims nothing twice")
}
