package controller

import (
	"archive/tar"
	"testing"
	"time"

	kustomize "github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// Every bad input ends with its reason and a message naming the problem, and
// nothing of the failing stage (nor of any later stage) is applied.
func TestBadInputAppliesNothing(t *testing.T) {
	cases := []struct {
		name    string
		files   map[string]testenv.File
		stages  []stagesetv1.Stage
		mutate  func(*meta.Artifact)
		reason  string
		message string
	}{
		{
			name: "malformed YAML",
			files: map[string]testenv.File{
				"ok/cm.yaml":  {Body: configMap("ok")},
				"bad/cm.yaml": {Body: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n"},
			},
			stages:  []stagesetv1.Stage{stage("ok", "./ok"), stage("bad", "./bad")},
			reason:  "False/BuildFailed",
			message: `stage "bad"`,
		},
		{
			name: "object claimed by two stages",
			files: map[string]testenv.File{
				"one/cm.yaml": {Body: configMap("ok")},
				"two/cm.yaml": {Body: configMap("ok")},
			},
			stages:  []stagesetv1.Stage{stage("one", "./one"), stage("two", "./two")},
			reason:  "False/BuildFailed",
			message: `claimed by stages "one" and "two"`,
		},
		{
			name: "path escaping the artifact through a symlink",
			files: map[string]testenv.File{
				"ok/cm.yaml": {Body: configMap("ok")},
				"escape":     {Type: tar.TypeSymlink, Linkname: "/etc"},
			},
			stages: []stagesetv1.Stage{stage("ok", "./ok"), stage("escape", "./escape")},
			reason: "False/ArtifactFailed",
		},
		{
			name: "archive entry escaping the extraction root",
			files: map[string]testenv.File{
				"ok/cm.yaml":      {Body: configMap("ok")},
				"../../evil.yaml": {Body: configMap("evil")},
			},
			stages: []stagesetv1.Stage{stage("ok", "./ok")},
			reason: "False/ArtifactFailed",
		},
		{
			name:   "digest mismatch",
			files:  map[string]testenv.File{"ok/cm.yaml": {Body: configMap("ok")}},
			stages: []stagesetv1.Stage{stage("ok", "./ok")},
			mutate: func(a *meta.Artifact) {
				a.Digest = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			},
			reason:  "False/ArtifactFailed",
			message: "digest",
		},
		{
			name: "unknown kind",
			files: map[string]testenv.File{
				"app/cm.yaml":     {Body: configMap("ok")},
				"app/widget.yaml": {Body: "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"},
			},
			stages:  []stagesetv1.Stage{stage("app", "./app")},
			reason:  "False/StageFailed",
			message: `stage "app" failed`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			r := &repo{t: t, kind: stagesetv1.GitRepositoryKind, ns: ns, name: "repo"}
			artifact, err := env.Artifacts.PublishFiles(r.path("bad"), "bad", tc.files)
			g.Expect(err).NotTo(HaveOccurred())
			if tc.mutate != nil {
				tc.mutate(artifact)
			}
			r.src, err = env.CreateSource(t.Context(), r.kind, ns, r.name, artifact)
			g.Expect(err).NotTo(HaveOccurred())

			obj := newStageSet(ns, "bad", r, tc.stages...)
			obj.Spec.TargetNamespace = ns
			create(t, obj)
			eventuallyReason(t, g, obj, tc.reason)
			if tc.message != "" {
				g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring(tc.message))
			}
			g.Expect(exists("v1", "ConfigMap", ns, "ok")()).To(BeFalse(), "nothing applied")
			g.Expect(exists("v1", "ConfigMap", ns, "evil")()).To(BeFalse())
		})
	}
}

func TestInvalidSpecThatSlippedPastAdmissionStalls(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("x")})
	obj := newStageSet(ns, "self", src, stage("a", "./"))
	// The CRD cannot see a dependency on itself through its own namespace.
	obj.Spec.DependsOn = append(obj.Spec.DependsOn, metaDependency("self", ns))
	create(t, obj)
	eventuallyReason(t, g, obj, "False/InvalidSpec")
	g.Expect(conditions.IsStalled(obj)).To(BeTrue())
	g.Expect(conditions.GetMessage(obj, meta.ReadyCondition)).To(ContainSubstring("cannot depend on itself"))
	g.Expect(exists("v1", "ConfigMap", ns, "x")()).To(BeFalse())
}

// What only the admission webhook checks (cron, time zones, CEL) stalls a
// StageSet stored while the webhook was down, every problem named at its
// field, before anything is applied: one validation serves both.
func TestWebhookChecksStallTheReconcilerToo(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "repo", "rev-1", files{"cm.yaml": configMap("x")})
	st := stage("a", "./")
	st.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
		HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "data.(("}}}
	obj := newStageSet(ns, "bad", src, st)
	obj.Spec.UpdateWindows = []stagesetv1.UpdateWindow{{Type: stagesetv1.UpdateWindowAllow, Schedule: "0 2 * * *",
		TimeZone: "Mars/Olympus", Duration: metav1.Duration{Duration: time.Hour}}}
	create(t, obj)
	eventuallyReason(t, g, obj, "False/InvalidSpec")
	g.Expect(conditions.IsStalled(obj)).To(BeTrue())
	message := conditions.GetMessage(obj, meta.ReadyCondition)
	g.Expect(message).To(ContainSubstring("spec.updateWindows[0].timeZone"))
	g.Expect(message).To(ContainSubstring("spec.stages[0].healthCheckExprs[0].current"))
	g.Expect(exists("v1", "ConfigMap", ns, "x")()).To(BeFalse())
}

func metaDependency(name, namespace string) meta.DependencyReference {
	return meta.DependencyReference{Name: name, Namespace: namespace}
}
