package apply

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// countedManager returns a Manager whose client counts its requests.
func countedManager(t *testing.T) (*Manager, *atomic.Int64) {
	t.Helper()
	requests := &atomic.Int64{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			requests.Add(1)
			return next.RoundTrip(req)
		})
	})
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme, Mapper: env.Client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	return NewManager(c, fieldManager), requests
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Re-asserting objects a stage applied before skips the validation pass:
// a GET and a dry-run each, where a new apply validates first (a GET and a
// dry-run more). Drift is still corrected.
func TestApply_ReassertSkipsTheValidationPass(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m, requests := countedManager(t)
	owner := Owner{Name: "shop", Namespace: "apps", Stage: "db"}
	const n = 5
	objects := func() []*unstructured.Unstructured {
		var out []*unstructured.Unstructured
		for i := range n {
			out = append(out, configMap(ns, fmt.Sprintf("cm-%d", i), map[string]any{"k": "v"}))
		}
		return out
	}
	_, err := m.Apply(ctx, owner, objects(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	requests.Store(0)
	_, err = m.Apply(ctx, owner, objects(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(requests.Load()).To(Equal(int64(4 * n)))

	requests.Store(0)
	cs, err := m.Apply(ctx, owner, objects(), ApplyOptions{Reassert: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(requests.Load()).To(Equal(int64(2 * n)))
	for _, e := range cs.Entries {
		g.Expect(e.Action).To(Equal(ssa.UnchangedAction))
	}

	// Drifted objects are corrected all the same.
	drifted := live(t, configMap(ns, "cm-0", nil))
	g.Expect(unstructured.SetNestedField(drifted.Object, "changed", "data", "k")).To(Succeed())
	g.Expect(env.Client.Update(ctx, drifted)).To(Succeed())
	cs, err = m.Apply(ctx, owner, objects(), ApplyOptions{Reassert: true})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.Entries[0].Action).To(Equal(ssa.ConfiguredAction))
	g.Expect(live(t, configMap(ns, "cm-0", nil)).Object["data"]).To(HaveKeyWithValue("k", "v"))
}
