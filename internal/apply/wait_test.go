package apply

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// deployment returns a one-replica Deployment manifest. No controller runs on
// the bed, so it stays InProgress until a test writes its status.
func deployment(t *testing.T, ns, name string) *unstructured.Unstructured {
	return fromYAML(t, `
apiVersion: apps/v1
kind: Deployment
metadata: {name: `+name+`, namespace: `+ns+`}
spec:
  replicas: 1
  selector: {matchLabels: {app: `+name+`}}
  template:
    metadata: {labels: {app: `+name+`}}
    spec: {containers: [{name: app, image: nginx}]}
`)
}

// markAvailable writes the status a deployment controller would write once
// the rollout is done.
func markAvailable(t *testing.T, d *unstructured.Unstructured) {
	patchStatus(t, d, map[string]any{
		"observedGeneration": int64(1),
		"replicas":           int64(1),
		"updatedReplicas":    int64(1),
		"readyReplicas":      int64(1),
		"availableReplicas":  int64(1),
		"conditions": []any{
			map[string]any{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
			map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
		},
	})
}

// applied applies objects as one stage and returns their identities.
func applied(t *testing.T, objects ...*unstructured.Unstructured) object.ObjMetadataSet {
	t.Helper()
	cs, err := newManager().Apply(context.Background(), Owner{Name: "s", Namespace: "n", Stage: "one"}, objects, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cs.ToObjMetadataSet()
}

// waitAsync runs Wait in the background and returns its result channel.
func waitAsync(ctx context.Context, set object.ObjMetadataSet, opts WaitOptions) <-chan error {
	return waitAsyncWith(newManager(), ctx, set, opts)
}

// waitAsyncWith is waitAsync through m.
func waitAsyncWith(m *Manager, ctx context.Context, set object.ObjMetadataSet, opts WaitOptions) <-chan error {
	done := make(chan error, 1)
	go func() { done <- m.Wait(ctx, set, opts) }()
	return done
}

func TestWait_ConfigMapsAreReadyAtOnce(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	set := applied(t, configMap(ns, "a", map[string]any{"k": "v"}), configMap(ns, "b", nil))
	g.Expect(newManager().Wait(context.Background(), set, WaitOptions{Objects: true, Timeout: testenv.Timeout})).To(Succeed())
}

func TestWait_DeploymentUntilAvailable(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	d := deployment(t, ns, "web")
	set := applied(t, d)

	done := waitAsync(context.Background(), set, WaitOptions{Objects: true, Timeout: testenv.Timeout, Interval: 100 * time.Millisecond})
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
}

func TestWait_ObjectsFalseSkipsTheStage(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	set := applied(t, deployment(t, ns, "web"))
	g.Expect(newManager().Wait(context.Background(), set, WaitOptions{Objects: false, Timeout: testenv.Timeout})).To(Succeed())
}

func TestWait_TimeoutListsWhatIsNotReady(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	set := applied(t, deployment(t, ns, "web"), configMap(ns, "ok", nil))
	err := newManager().Wait(context.Background(), set, WaitOptions{Objects: true, Timeout: 2 * time.Second, Interval: 200 * time.Millisecond})
	g.Expect(err).To(MatchError(ContainSubstring("timeout waiting for: [Deployment/" + ns + "/web status: 'InProgress': ")))
	g.Expect(err.Error()).NotTo(ContainSubstring("ConfigMap"))
}

func TestWait_CallerDeadlineListsWhatIsNotReady(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	set := applied(t, deployment(t, ns, "web"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := newManager().Wait(ctx, set, WaitOptions{Objects: true, Timeout: time.Hour})
	g.Expect(err).To(MatchError(ContainSubstring("timeout waiting for: [Deployment/" + ns + "/web status: 'InProgress'")))
}

func TestWait_HealthChecksOutsideTheStage(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	d := deployment(t, ns, "elsewhere")
	applied(t, d)
	opts := WaitOptions{
		Timeout:          2 * time.Second,
		Interval:         200 * time.Millisecond,
		HealthChecks:     []meta.NamespacedObjectKindReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "elsewhere"}},
		DefaultNamespace: ns,
	}
	err := newManager().Wait(context.Background(), nil, opts)
	g.Expect(err).To(MatchError(ContainSubstring("Deployment/" + ns + "/elsewhere status: 'InProgress'")))

	markAvailable(t, d)
	opts.Timeout = testenv.Timeout
	g.Expect(newManager().Wait(context.Background(), nil, opts)).To(Succeed())
}

func TestWait_ClusterScopedHealthCheckIgnoresDefaultNamespace(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	opts := WaitOptions{
		Timeout:          testenv.Timeout,
		HealthChecks:     []meta.NamespacedObjectKindReference{{APIVersion: "v1", Kind: "Namespace", Name: ns}},
		DefaultNamespace: "somewhere-else",
	}
	g.Expect(newManager().Wait(context.Background(), nil, opts)).To(Succeed())
}

func TestWait_MissingHealthCheckTimesOut(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	err := newManager().Wait(context.Background(), nil, WaitOptions{
		Timeout:      time.Second,
		HealthChecks: []meta.NamespacedObjectKindReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "nope", Namespace: ns}},
	})
	g.Expect(err).To(MatchError(ContainSubstring("ConfigMap/" + ns + "/nope status: 'NotFound'")))
}

func TestWait_CancelReturnsPromptly(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	set := applied(t, deployment(t, ns, "web"))
	ctx, cancel := context.WithCancel(context.Background())
	done := waitAsync(ctx, set, WaitOptions{Objects: true, Timeout: time.Hour})
	g.Consistently(done, 500*time.Millisecond, testenv.Poll).ShouldNot(Receive())
	cancel()
	var err error
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(&err))
	g.Expect(errors.Is(err, context.Canceled)).To(BeTrue(), "got %v", err)
}

func TestWait_CELHealthChecks(t *testing.T) {
	installWidgetCRD(t)
	exprs := []kustomize.CustomHealthCheck{{
		APIVersion: widgetGVK.GroupVersion().String(),
		Kind:       widgetGVK.Kind,
		HealthCheckExpressions: kustomize.HealthCheckExpressions{
			Current: "status.phase == 'Ready'",
			Failed:  "status.phase == 'Broken'",
		},
	}}

	t.Run("missing field keeps waiting until current", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		w := widget(ns, "w")
		set := applied(t, w)

		done := waitAsync(context.Background(), set, WaitOptions{Objects: true, Exprs: exprs, Timeout: testenv.Timeout, Interval: 100 * time.Millisecond})
		g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
		patchStatus(t, w, map[string]any{"phase": "Ready"})
		g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
	})

	t.Run("missing field times out with the reason", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		set := applied(t, widget(ns, "w"))
		err := newManager().Wait(context.Background(), set, WaitOptions{Objects: true, Exprs: exprs, Timeout: time.Second})
		g.Expect(err).To(MatchError(ContainSubstring("timeout waiting for: [Widget/" + ns + "/w status: 'Unknown'")))
		g.Expect(err).To(MatchError(ContainSubstring("no such attribute(s): status.phase")))
	})

	t.Run("failed expression fails fast", func(t *testing.T) {
		g := NewWithT(t)
		ns := env.NewNamespace(t)
		w := widget(ns, "w")
		set := applied(t, w, configMap(ns, "ok", nil))
		patchStatus(t, w, map[string]any{"phase": "Broken"})
		// Timeout is far away: only failing fast reports a failure rather
		// than a timeout.
		err := newManager().Wait(context.Background(), set, WaitOptions{Objects: true, Exprs: exprs, Timeout: 10 * time.Minute})
		g.Expect(err).To(MatchError("health check failed for: [Widget/" + ns + "/w status: 'Failed']"))
	})

	t.Run("invalid expression", func(t *testing.T) {
		g := NewWithT(t)
		bad := []kustomize.CustomHealthCheck{{APIVersion: "v1", Kind: "ConfigMap",
			HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: "data.k =="}}}
		err := newManager().Wait(context.Background(), nil, WaitOptions{Exprs: bad,
			HealthChecks: []meta.NamespacedObjectKindReference{{Kind: "ConfigMap", Name: "x", Namespace: "y"}}})
		g.Expect(err).To(MatchError(ContainSubstring("invalid health check expression")))
	})
}
