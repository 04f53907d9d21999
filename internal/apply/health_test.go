package apply

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// watchingManager returns a Manager whose client can watch, as the
// controller's can, acting as cfg; gets counts its GET requests.
func watchingManager(t *testing.T, cfg *rest.Config) (*Manager, *atomic.Int64) {
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
	return NewManager(c, fieldManager), gets
}

// The stage's own objects are followed with a watch: a Deployment that
// becomes Available is noticed at once, though the poll interval is an
// hour, and the wait reads no object.
func TestWait_WatchesTheStage(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	owner := Owner{Name: "shop", Namespace: ns, Stage: "web"}
	m, gets := watchingManager(t, env.Config)
	d := deployment(t, ns, "web")
	cs, err := m.Apply(context.Background(), owner, []*unstructured.Unstructured{d}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	gets.Store(0)
	done := make(chan error, 1)
	go func() {
		done <- m.Wait(context.Background(), cs.ToObjMetadataSet(), WaitOptions{
			Objects: true, Selector: owner.Labels(), Interval: time.Hour, Timeout: testenv.Timeout})
	}()
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
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
	ns := env.NewNamespace(t)
	owner := Owner{Name: "shop", Namespace: ns, Stage: "web"}
	m, _ := watchingManager(t, env.Config)
	d := deployment(t, ns, "web")
	cs, err := m.Apply(ctx, owner, []*unstructured.Unstructured{d}, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	unlabelled := liveObject(t, d)
	unlabelled.SetLabels(nil)
	g.Expect(env.Client.Update(ctx, unlabelled)).To(Succeed())

	done := make(chan error, 1)
	go func() {
		done <- m.Wait(ctx, cs.ToObjMetadataSet(), WaitOptions{
			Objects: true, Selector: owner.Labels(), Interval: 100 * time.Millisecond, Timeout: testenv.Timeout})
	}()
	g.Consistently(done, time.Second, testenv.Poll).ShouldNot(Receive())
	markAvailable(t, d)
	g.Eventually(done, testenv.Timeout, testenv.Poll).Should(Receive(BeNil()))
}
