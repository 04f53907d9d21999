package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

// kubeconfigFile writes an admin kubeconfig of the test API server.
func kubeconfigFile(t *testing.T) string {
	t.Helper()
	data, err := env.Kubeconfig("cli-" + strings.ToLower(t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := NewRootCommand(&out)
	cmd.SetArgs(append(args, "--kubeconfig", kubeconfigFile(t)))
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// createStageSet creates a StageSet with a status as the controller writes it.
func createStageSet(t *testing.T, ns, name string, ready bool, stagesReady int) {
	t.Helper()
	ctx := context.Background()
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: stagesetv1.StageSetSpec{
			Interval:  metav1.Duration{Duration: time.Minute},
			SourceRef: &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"},
			Stages:    []stagesetv1.Stage{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		},
	}
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	for i, st := range obj.Spec.Stages {
		phase := stagesetv1.StagePhasePending
		if i < stagesReady {
			phase = stagesetv1.StagePhaseReady
		}
		obj.Status.Stages = append(obj.Status.Stages, stagesetv1.StageStatus{Name: st.Name, Phase: phase})
	}
	if ready {
		obj.Status.LastAppliedRevision = "main@sha1:abc"
		conditions.MarkTrue(obj, meta.ReadyCondition, stagesetv1.SucceededReason, "Applied revision: main@sha1:abc (3 stages)")
	} else {
		conditions.MarkFalse(obj, meta.ReadyCondition, stagesetv1.StageFailedReason, `stage "b" failed: boom`)
	}
	if err := env.Client.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
}

func TestGetPrintsATable(t *testing.T) {
	g := NewWithT(t)
	ns, other := env.NewNamespace(t), env.NewNamespace(t)
	createStageSet(t, ns, "shop", true, 3)
	createStageSet(t, ns, "broken", false, 1)
	createStageSet(t, other, "elsewhere", true, 3)

	out, err := run(t, "get", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(lines).To(HaveLen(3))
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "REVISION", "STAGES", "SUSPENDED", "MESSAGE"}))
	g.Expect(strings.Fields(lines[1])[:5]).To(Equal([]string{"broken", "False", "-", "1/3", "false"}))
	g.Expect(lines[1]).To(HaveSuffix(`stage "b" failed: boom`))
	g.Expect(strings.Fields(lines[2])[:5]).To(Equal([]string{"shop", "True", "main@sha1:abc", "3/3", "false"}))

	out, err = run(t, "get", "-A")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(HavePrefix("NAMESPACE"))
	g.Expect(out).To(ContainSubstring(other))
	g.Expect(out).To(ContainSubstring("elsewhere"))

	out, err = run(t, "get", "-n", env.NewNamespace(t))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("No StageSets found.\n"))
}

func TestGetPrintsYAMLAndJSON(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", true, 3)

	out, err := run(t, "get", "shop", "-n", ns, "-o", "yaml")
	g.Expect(err).NotTo(HaveOccurred())
	var obj stagesetv1.StageSet
	g.Expect(yaml.UnmarshalStrict([]byte(out), &obj)).To(Succeed())
	g.Expect(obj.Kind).To(Equal(stagesetv1.StageSetKind))
	g.Expect(obj.Status.LastAppliedRevision).To(Equal("main@sha1:abc"))

	out, err = run(t, "get", "shop", "-n", ns, "-o", "json")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(HavePrefix("{"))
	g.Expect(out).To(ContainSubstring(`"name": "shop"`))

	_, err = run(t, "get", "-n", ns, "-o", "table")
	g.Expect(err).To(MatchError(`--output must be wide, yaml or json, got "table"`))
	_, err = run(t, "get", "absent", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/absent not found"))
}

// -o wide adds the Ready reason, the sources and how long Ready has had its
// status; a suspended StageSet says so in SUSPENDED.
func TestGetWide(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", true, 3)
	obj := &stagesetv1.StageSet{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, obj)).To(Succeed())
	obj.Spec.Suspend = true
	obj.Spec.Stages[2].SourceRef = &stagesetv1.SourceReference{Kind: stagesetv1.OCIRepositoryKind, Name: "images", Namespace: "flux-system"}
	g.Expect(env.Client.Update(ctx, obj)).To(Succeed())

	out, err := run(t, "get", "-n", ns, "-o", "wide")
	g.Expect(err).NotTo(HaveOccurred())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	g.Expect(lines).To(HaveLen(2))
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "REASON", "REVISION", "STAGES", "SUSPENDED", "SOURCES", "SINCE", "MESSAGE"}))
	g.Expect(strings.Fields(lines[1])[:7]).To(Equal([]string{"shop", "True", "Succeeded", "main@sha1:abc", "3/3", "true",
		"GitRepository/repo,OCIRepository/flux-system/images"}))
}

// --status-selector keeps the StageSets whose condition has that status,
// the condition and status compared regardless of case, as in flux get.
func TestGetStatusSelector(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", true, 3)
	createStageSet(t, ns, "broken", false, 1)

	out, err := run(t, "get", "-n", ns, "--status-selector", "ready=false")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("broken"))
	g.Expect(out).NotTo(ContainSubstring("shop"))

	out, err = run(t, "get", "-n", ns, "--status-selector", "Ready=TRUE")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("shop"))
	g.Expect(out).NotTo(ContainSubstring("broken"))

	out, err = run(t, "get", "-n", ns, "--status-selector", "stalled=true")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(Equal("No StageSets found.\n"))

	_, err = run(t, "get", "-n", ns, "--status-selector", "ready")
	g.Expect(err).To(MatchError(ContainSubstring("--status-selector must be CONDITION=STATUS")))
}

// --watch, not on a terminal, lists, then appends a row whenever a
// StageSet's row changes, until the context ends.
func TestGetWatchAppendsChangedRows(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", false, 1)

	out := &testenv.Buffer{}
	cmd := NewRootCommand(out)
	cmd.SetArgs([]string{"get", "-n", ns, "--watch", "--kubeconfig", kubeconfigFile(t)})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(ContainSubstring(`stage "b" failed: boom`))

	obj := &stagesetv1.StageSet{}
	g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, obj)).To(Succeed())
	obj.Status.LastAppliedRevision = "main@sha1:def"
	conditions.MarkTrue(obj, meta.ReadyCondition, stagesetv1.SucceededReason, "Applied revision: main@sha1:def")
	g.Expect(env.Client.Status().Update(ctx, obj)).To(Succeed())
	createStageSet(t, ns, "cart", true, 3)

	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(And(
		ContainSubstring("Applied revision: main@sha1:def"), ContainSubstring("cart")))
	cancel()
	g.Eventually(done, testenv.Timeout).Should(Receive(BeNil()))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	g.Expect(strings.Fields(lines[0])[0]).To(Equal("NAME"))
	g.Expect(strings.Count(out.String(), "NAME")).To(Equal(1), "the header is printed once")
	g.Expect(lines[1]).To(HavePrefix("shop"))
	g.Expect(out.String()).NotTo(ContainSubstring("\x1b["), "no cursor movement outside a terminal")
}

// On a terminal the block of rows is redrawn in place: the cursor goes back
// over the previous rows and clears them.
func TestLiveBlockRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	b := liveBlock{out: &out}
	b.draw("a\nb\n")
	b.draw("c\n")
	b.keep()
	b.draw("d\n")
	if got, want := out.String(), "\r\x1b[Ja\nb\n\x1b[2A\r\x1b[Jc\n\r\x1b[Jd\n"; got != want {
		t.Fatalf("drew %q, want %q", got, want)
	}
}

// On a terminal, reconcile keeps a line per stage and redraws it in place
// once a stage moves; outside one it appends a line per phase change.
func TestStageProgress(t *testing.T) {
	obj := &stagesetv1.StageSet{Status: stagesetv1.StageSetStatus{Stages: []stagesetv1.StageStatus{
		{Name: "db", Phase: stagesetv1.StagePhaseReady, Revision: "r1"},
		{Name: "app", Phase: stagesetv1.StagePhaseReady, Revision: "r1"},
	}}}
	var live, plain bytes.Buffer
	pl, pp := newStageProgress(&live, true), newStageProgress(&plain, false)
	pl.skip(obj)
	pp.skip(obj)
	pl.show(obj)
	pp.show(obj)
	if live.Len()+plain.Len() != 0 {
		t.Fatalf("an unchanged StageSet printed %q and %q", live.String(), plain.String())
	}
	obj.Status.Stages[0] = stagesetv1.StageStatus{Name: "db", Phase: stagesetv1.StagePhaseApplying, Revision: "r2", Message: "applying\n3 objects"}
	pl.show(obj)
	pp.show(obj)
	obj.Status.Stages[0].Phase = stagesetv1.StagePhaseReady
	pl.show(obj)
	pp.show(obj)
	pl.end()

	if got, want := plain.String(), "  stage db: Applying (applying 3 objects)\n  stage db: Ready (applying 3 objects)\n"; got != want {
		t.Errorf("plain output %q, want %q", got, want)
	}
	want := "\r\x1b[J◎ stage db: Applying (applying 3 objects)\n✔ stage app: Ready\n" +
		"\x1b[2A\r\x1b[J✔ stage db: Ready (applying 3 objects)\n✔ stage app: Ready\n"
	if got := live.String(); got != want {
		t.Errorf("live output %q, want %q", got, want)
	}
}

// A live line longer than the terminal is cut: a wrapped line would take
// two rows and the redraw would leave one behind.
func TestClipKeepsLinesOnOneRow(t *testing.T) {
	for _, tc := range []struct {
		line  string
		width int
		want  string
	}{
		{"abcdef\n", 4, "abc\n"},
		{"äöüß\n", 3, "äö\n"},
		{"abc\n", 10, "abc\n"},
		{"abcdef", 0, "abcdef"},
	} {
		if got := clip(tc.line, tc.width); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.line, tc.width, got, tc.want)
		}
	}
}

// get NAME --watch follows that one StageSet, from a list's resource
// version; a missing one is an error.
func TestGetWatchOneStageSet(t *testing.T) {
	g := NewWithT(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := env.NewNamespace(t)
	createStageSet(t, ns, "shop", false, 1)
	createStageSet(t, ns, "other", false, 1)

	out := &testenv.Buffer{}
	cmd := NewRootCommand(out)
	cmd.SetArgs([]string{"get", "shop", "-n", ns, "-w", "--kubeconfig", kubeconfigFile(t)})
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(ContainSubstring("shop"))
	for _, name := range []string{"other", "shop"} {
		obj := &stagesetv1.StageSet{}
		g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)).To(Succeed())
		conditions.MarkTrue(obj, meta.ReadyCondition, stagesetv1.SucceededReason, "Applied revision: %s", name)
		g.Expect(env.Client.Status().Update(ctx, obj)).To(Succeed())
	}
	g.Eventually(out.String, testenv.Timeout, testenv.Poll).Should(ContainSubstring("Applied revision: shop"))
	cancel()
	g.Eventually(done, testenv.Timeout).Should(Receive(BeNil()))
	g.Expect(out.String()).NotTo(ContainSubstring("other"))

	_, err := run(t, "get", "absent", "-n", ns, "--watch")
	g.Expect(err).To(MatchError("StageSet " + ns + "/absent not found"))
}
