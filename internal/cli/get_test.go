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
	g.Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "READY", "REVISION", "STAGES", "MESSAGE"}))
	g.Expect(strings.Fields(lines[1])[:4]).To(Equal([]string{"broken", "False", "-", "1/3"}))
	g.Expect(lines[1]).To(HaveSuffix(`stage "b" failed: boom`))
	g.Expect(strings.Fields(lines[2])[:4]).To(Equal([]string{"shop", "True", "main@sha1:abc", "3/3"}))

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

	_, err = run(t, "get", "-n", ns, "-o", "wide")
	g.Expect(err).To(MatchError(ContainSubstring("--output must be yaml or json")))
	_, err = run(t, "get", "absent", "-n", ns)
	g.Expect(err).To(MatchError(ContainSubstring("not found")))
}
