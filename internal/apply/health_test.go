package apply

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/apis/meta"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// watchingManager returns a Manager whose client can watch, as the
// controller's can, acting as cfg; gets counts its GET requests.
func watchingManager(t *testing.T, cfg *rest.Config) (*Manager, *atomic.Int64) {
	t.Helper()
	c, gets := countingClient(t, cfg)
	return NewManager(c, fieldManager), gets
}

// countingClient returns a client that can watch, acting as cfg; gets
// counts its GET requests (watches not included).
func countingClient(t *testing.T, cfg *rest.Config) (client.WithWatch, *atomic.Int64) {
	t.Helper()
	gets := &atomic.Int64{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if req.Method == http.MethodGet && !req.URL.Query().Has("watch") {
				gets.Add(1)
			}
			return next.RoundTrip(req)
		})
	})
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: env.Scheme, Mapper: env.Client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	return c, gets
}

// watchedDeployment applies a Deployment as the stage "web" of shop
// through a Manager that can watch.
func watchedDeployment(t *testing.T, ns string) (*Manager, *atomic.Int64, *unstructured.Unstructured, object.ObjMetadataSet, Owner) {
	t.Helper()
	owner := Owner{Name: "shop", Namespace: ns, Stage: "web"}
	m, gets := watchingManager(t, env.Config)
	d := deployment(t, ns, "web")
	cs, err := m.Apply(context.Background(), owner, []*unstructured.Unstructured{d}, ApplyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return m, gets, d, cs.ToObjMetadataSet(), owner
}

// The stage's own objects are followed with a watch: a Deployment that
// becomes Available is noticed at once, though the poll interval is an
// hour, and the wait reads no object.
func TestWait_WatchesTheStage(t *testing.T) {
	g := NewWithT(t)
	m, gets, d, set, owner := watchedDeployment(t, env.NewNamespace(t))
	gets.Store(0)
	done := waitAsyncWith(m, context.Background(), set, WaitOptions{
		Objects: true, Selector: owner.Labels(), Interval: time.Hour, Timeout: testenv.Timeout})
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
	g.Expect(gets.Load()).To(BeZero(), "no object read")
}

// stallingClient hands out watches of which those opened before stall is
// set go silent, without closing, once it is: what a watch does through a
// connection that stalled. Watches opened afterwards work.
type stallingClient struct {
	client.WithWatch
	stall atomic.Bool
}

func (c *stallingClient) Watch(ctx context.Context, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
	w, err := c.WithWatch.Watch(ctx, list, opts...)
	if err != nil {
		return nil, err
	}
	openedBeforeStall := !c.stall.Load()
	out := make(chan watch.Event)
	go func() {
		defer close(out)
		defer w.Stop()
		for ev := range w.ResultChan() {
			if openedBeforeStall && c.stall.Load() {
				continue
			}
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	return watch.NewProxyWatcher(out), nil
}

// A watch silent for a few intervals while an object is not Current is
// opened again: a stalled watch does not hold the stage until its timeout,
// and the wait still reads no object.
func TestWait_StalledWatchIsOpenedAgain(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	owner := Owner{Name: "shop", Namespace: ns, Stage: "web"}
	c, gets := countingClient(t, env.Config)
	stalling := &stallingClient{WithWatch: c}
	m := NewManager(stalling, fieldManager)
	d := deployment(t, ns, "web")
	cs, err := m.Apply(context.Background(), owner, []*unstructured.Unstructured{d}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	done := waitAsyncWith(m, context.Background(), cs.ToObjMetadataSet(), WaitOptions{
		Objects: true, Selector: owner.Labels(), Interval: 100 * time.Millisecond, Timeout: testenv.Timeout})
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	gets.Store(0)
	stalling.stall.Store(true)
	markAvailable(t, d)
	g.Eventually(done, 5*time.Second, testenv.Poll).Should(Receive(BeNil()))
	g.Expect(gets.Load()).To(BeZero(), "no object read")
}

// An identity that may read the kind but not watch it is served by reads.
func TestWait_ReadsWhenTheIdentityMayNotWatch(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	owner := Owner{Name: "shop", Namespace: ns, Stage: "web"}
	user := testenv.RandomName("reader")
	cfg, err := env.AddUser(user)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(env.Client.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "get-deployments", Namespace: ns},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}}},
	})).To(Succeed())
	g.Expect(env.Client.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "get-deployments", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "get-deployments"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})).To(Succeed())

	d := deployment(t, ns, "web")
	cs, err := newManager().Apply(ctx, owner, []*unstructured.Unstructured{d}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	m, gets := watchingManager(t, cfg)
	done := make(chan error, 1)
	go func() {
		done <- m.Wait(ctx, cs.ToObjMetadataSet(), WaitOptions{
			Objects: true, Selector: owner.Labels(), Interval: 100 * time.Millisecond, Timeout: testenv.Timeout})
	}()
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
	g.Expect(gets.Load()).To(BeNumerically(">", 1))
}

// An object of the stage that lost the stage's labels since it was applied
// is not in the watch: it is read directly.
func TestWait_ReadsAnObjectTheWatchDoesNotShow(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m, _, d, set, owner := watchedDeployment(t, env.NewNamespace(t))
	unlabelled := liveObject(t, d)
	unlabelled.SetLabels(nil)
	g.Expect(env.Client.Update(ctx, unlabelled)).To(Succeed())

	done := waitAsyncWith(m, ctx, set, WaitOptions{
		Objects: true, Selector: owner.Labels(), Interval: 100 * time.Millisecond, Timeout: testenv.Timeout})
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
}

// A StatefulSet whose Pod crash-loops fails the wait at once, as kstatus
// judges it by its Pods, whether it is watched or read.
func TestWait_CrashLoopingStatefulSetFailsFast(t *testing.T) {
	ctx := context.Background()
	for _, watched := range []bool{true, false} {
		t.Run(map[bool]string{true: "watched", false: "read"}[watched], func(t *testing.T) {
			g := NewWithT(t)
			ns := env.NewNamespace(t)
			owner := Owner{Name: "shop", Namespace: ns, Stage: "db"}
			m, _ := watchingManager(t, env.Config)
			if !watched {
				m = newManager()
			}
			sts := fromYAML(t, `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: `+ns+`}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: app, image: nginx}]}
`)
			cs, err := m.Apply(ctx, owner, []*unstructured.Unstructured{sts}, ApplyOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			pod := fromYAML(t, `
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: `+ns+`, labels: {app: db}}
spec: {containers: [{name: app, image: nginx}]}
`)
			g.Expect(env.Client.Create(ctx, pod)).To(Succeed())
			patchStatus(t, pod, map[string]any{
				"phase": "Running",
				"containerStatuses": []any{map[string]any{"name": "app", "image": "nginx", "imageID": "", "ready": false, "restartCount": int64(5),
					"state": map[string]any{"waiting": map[string]any{"reason": "CrashLoopBackOff"}}}},
			})
			// Only failing fast ends the wait before its timeout.
			err = m.Wait(ctx, cs.ToObjMetadataSet(), WaitOptions{Objects: true, Selector: owner.Labels(),
				Interval: 100 * time.Millisecond, Timeout: 10 * time.Minute})
			g.Expect(err).To(MatchError(ContainSubstring("health check failed for: [StatefulSet/" + ns + "/db status: 'Failed'")))
		})
	}
}

// A health check of a kind whose CRD appears during the wait is found.
func TestWait_HealthCheckOfAKindServedLater(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	group := testenv.RandomName("later") + ".stageset.io"
	done := make(chan error, 1)
	go func() {
		done <- newManager().Wait(ctx, nil, WaitOptions{
			HealthChecks: []meta.NamespacedObjectKindReference{{APIVersion: group + "/v1", Kind: "Gadget", Name: "g", Namespace: ns}},
			Interval:     100 * time.Millisecond, Timeout: testenv.Timeout})
	}()
	g.Consistently(done, 500*time.Millisecond, testenv.Poll).ShouldNot(Receive())
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets." + group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: group, Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "gadgets", Singular: "gadget", Kind: "Gadget", ListKind: "GadgetList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr(true)}}}},
		},
	}
	g.Expect(env.Client.Create(ctx, crd)).To(Succeed())
	gadget := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": "Gadget", "metadata": map[string]any{"name": "g", "namespace": ns}}}
	g.Eventually(func() error { return env.Client.Create(ctx, gadget) }, testenv.Timeout, testenv.Poll).Should(Succeed())
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
}

// An object whose labels are removed while the watch follows it leaves
// the watch (a Deleted event) and is then read directly.
func TestWait_ObjectLeavingTheWatchIsRead(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	m, _, d, set, owner := watchedDeployment(t, env.NewNamespace(t))
	done := waitAsyncWith(m, ctx, set, WaitOptions{
		Objects: true, Selector: owner.Labels(), Interval: 100 * time.Millisecond, Timeout: testenv.Timeout})
	g.Consistently(done, 500*time.Millisecond, testenv.Poll).ShouldNot(Receive())
	unlabelled := liveObject(t, d)
	unlabelled.SetLabels(nil)
	g.Expect(env.Client.Update(ctx, unlabelled)).To(Succeed())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
}

func ptr[T any](v T) *T { return &v }
