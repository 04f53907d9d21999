package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// fixedNow is the "now" of the golden files.
var fixedNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// runAs runs the command newCmd builds, under the identity of cfg, with
// the connection flags bound as on the real root command.
func runAs(ctx context.Context, cfg *rest.Config, out io.Writer, newCmd func(*kubeOptions) *cobra.Command, args ...string) error {
	k := newKubeOptions()
	k.restConfig = cfg
	root := &cobra.Command{Use: nameStagesetctl, SilenceUsage: true, SilenceErrors: true}
	k.bindFlags(root.PersistentFlags())
	root.AddCommand(newCmd(k))
	root.SetOut(out)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// runAdmin runs newCmd as cluster admin and returns its output with the
// test's random namespace hidden, for golden files.
func runAdmin(t *testing.T, ns string, newCmd func(*kubeOptions) *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runAs(context.Background(), env.Config, &out, newCmd, args...)
	return hideNamespace(out.String(), ns), err
}

// hideNamespace replaces the random part of the namespace ns ("test-1f0c...")
// with as many x, so that tables keep their alignment.
func hideNamespace(s, ns string) string {
	i := strings.LastIndex(ns, "-") + 1
	return strings.ReplaceAll(s, ns, ns[:i]+strings.Repeat("x", len(ns)-i))
}

// createWithStatus creates obj and writes its status as the controller
// would.
func createWithStatus(t *testing.T, obj *stagesetv1.StageSet) {
	t.Helper()
	ctx := context.Background()
	status := obj.Status.DeepCopy()
	if obj.Spec.Interval.Duration == 0 {
		obj.Spec.Interval = metav1.Duration{Duration: time.Minute}
	}
	if obj.Spec.SourceRef == nil {
		obj.Spec.SourceRef = &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo"}
	}
	if err := env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	obj.Status = *status
	if err := env.Client.Status().Update(ctx, obj); err != nil {
		t.Fatal(err)
	}
}

// treeStageSet is StageSet "shop" in ns: stage a applied a ConfigMap
// (live), a Deployment (live, never rolled out), a Secret (live) and a
// ConfigMap since deleted; b failed; c never ran; "old" was removed from
// spec and is being torn down.
func treeStageSet(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	live := []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings", Namespace: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "token", Namespace: ns}},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
				},
			},
		},
	}
	for _, o := range live {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	completed := metav1.NewTime(fixedNow.Add(-time.Hour))
	createWithStatus(t, &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec:       stagesetv1.StageSetSpec{Stages: []stagesetv1.Stage{{Name: "a"}, {Name: "b"}, {Name: "c"}}},
		Status: stagesetv1.StageSetStatus{
			// Not in spec order: tree prints the spec's.
			Stages: []stagesetv1.StageStatus{
				{Name: "old", Phase: stagesetv1.StagePhaseReady, Revision: "main@sha1:aaa", Inventory: &stagesetv1.ResourceInventory{Entries: []stagesetv1.ResourceRef{
					{ID: "_old-ns__Namespace", Version: "v1"},
				}}},
				{Name: "b", Phase: stagesetv1.StagePhaseFailed, Revision: "main@sha1:abc", Message: "health check failed: boom"},
				{Name: "a", Phase: stagesetv1.StagePhaseReady, Revision: "main@sha1:abc", Inventory: &stagesetv1.ResourceInventory{Entries: []stagesetv1.ResourceRef{
					{ID: ns + "_gone__ConfigMap", Version: "v1"},
					{ID: ns + "_settings__ConfigMap", Version: "v1"},
					{ID: ns + "_token__Secret", Version: "v1"},
					{ID: ns + "_web_apps_Deployment", Version: "v1"},
				}}},
			},
			Migrations: []stagesetv1.MigrationRecord{{Stage: "a", Version: "1", Job: "shop-a-m-1-abcde", CompletedAt: &completed}},
		},
	})
}

func TestTreePrintsStagesAndInventory(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	treeStageSet(t, ns)

	out, err := runAdmin(t, ns, newTreeCommand, "tree", "shop", "-n", ns)
	g.Expect(err).NotTo(HaveOccurred())
	golden(t, "tree.golden", out)

	_, err = runAdmin(t, ns, newTreeCommand, "tree", "absent", "-n", ns)
	g.Expect(err).To(MatchError("StageSet " + ns + "/absent not found"))
	_, err = runAdmin(t, ns, newTreeCommand, "tree", "shop", "-n", ns, "-o", "yaml")
	g.Expect(err).To(MatchError(ContainSubstring("--output must be json")))
}

// --health reads every object under the caller's identity: one it may not
// read is "Unknown (forbidden)", never a guess, and one deleted since the
// rollout is NotFound.
func TestTreeHealthShowsLiveStatus(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	treeStageSet(t, ns)

	user := testenv.RandomName("tree-reader")
	cfg, err := env.AddUser(user)
	g.Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "tree-reader", Namespace: ns},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{stagesetv1.GroupVersion.Group}, Resources: []string{"stagesets"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}},
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
		},
	}
	g.Expect(env.Client.Create(ctx, role)).To(Succeed())
	g.Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "tree-reader", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	})).To(Succeed())

	var out bytes.Buffer
	g.Eventually(func() error {
		out.Reset()
		return runAs(ctx, cfg, &out, newTreeCommand, "tree", "shop", "-n", ns, "--health")
	}, testenv.Timeout, testenv.Poll).Should(Succeed())
	golden(t, "tree-health.golden", hideNamespace(out.String(), ns))

	out.Reset()
	g.Expect(runAs(ctx, cfg, &out, newTreeCommand, "tree", "shop", "-n", ns, "--health", "-o", "json")).To(Succeed())
	var tree stageSetTree
	g.Expect(json.Unmarshal(out.Bytes(), &tree)).To(Succeed())
	g.Expect(tree.Stages).To(HaveLen(4))
	health := map[string]string{}
	for _, o := range tree.Stages[0].Objects {
		g.Expect(o.Health).NotTo(BeNil())
		health[o.Kind+"/"+o.Name] = o.Health.Status
	}
	g.Expect(health).To(Equal(map[string]string{
		"ConfigMap/gone":     "NotFound",
		"ConfigMap/settings": "Current",
		"Secret/token":       "Unknown (forbidden)",
		"Deployment/web":     "InProgress",
	}))
	golden(t, "tree-health.json", hideNamespace(out.String(), ns))
}
