package apply

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// requestCounts counts a Manager's requests by sort.
type requestCounts struct {
	mu                    sync.Mutex
	gets, dryRuns, writes int
}

func (c *requestCounts) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets, c.dryRuns, c.writes = 0, 0, 0
}

// of returns the counts as [GETs, dry-runs, writes].
func (c *requestCounts) of() [3]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return [3]int{c.gets, c.dryRuns, c.writes}
}

// countedManager returns a Manager whose client counts its requests.
func countedManager(t *testing.T) (*Manager, *requestCounts) {
	t.Helper()
	counts := &requestCounts{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			counts.mu.Lock()
			switch {
			case req.URL.Query().Has("dryRun"):
				counts.dryRuns++
			case req.Method == http.MethodGet:
				counts.gets++
			default:
				counts.writes++
			}
			counts.mu.Unlock()
			return next.RoundTrip(req)
		})
	})
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme, Mapper: env.Client.RESTMapper()})
	if err != nil {
		t.Fatal(err)
	}
	return NewManager(c, fieldManager), counts
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// What a stage costs the API server: a new object is dry-run once and
// written once (ssa's read and dry-run are answered from the validation
// pass), an unchanged one is dry-run and read, a re-asserted one read and
// dry-run; ConfigMaps are healthy from the API server's answers, without a
// read. Drift is still found and corrected.
func TestApply_RequestsPerObject(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m, counts := countedManager(t)
	owner := Owner{Name: "shop", Namespace: "apps", Stage: "db"}
	const n = 5
	objects := func() []*unstructured.Unstructured {
		var out []*unstructured.Unstructured
		for i := range n {
			out = append(out, configMap(ns, fmt.Sprintf("cm-%d", i), map[string]any{"k": "v"}))
		}
		return out
	}
	waitSetOf := func(cs *ssa.ChangeSet) object.ObjMetadataSet { return cs.ToObjMetadataSet() }

	live := NewLiveObjects()
	cs, err := m.Apply(ctx, owner, objects(), ApplyOptions{Live: live})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.CreatedAction))
	g.Expect(counts.of()).To(Equal([3]int{0, n, n}), "GETs, dry-runs, writes of a new stage")
	g.Expect(m.Settled(ctx, waitSetOf(cs), WaitOptions{Objects: true, Live: live})).To(BeTrue())
	g.Expect(m.Wait(ctx, waitSetOf(cs), WaitOptions{Objects: true, Live: live})).To(Succeed())
	g.Expect(counts.of()).To(Equal([3]int{0, n, n}), "health of ConfigMaps from the answers to the writes")

	counts.reset()
	cs, err = m.Apply(ctx, owner, objects(), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.UnchangedAction))
	g.Expect(counts.of()).To(Equal([3]int{n, n, 0}), "an unchanged stage")

	counts.reset()
	live = NewLiveObjects()
	cs, err = m.Apply(ctx, owner, objects(), ApplyOptions{Reassert: true, Live: live})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.UnchangedAction))
	g.Expect(counts.of()).To(Equal([3]int{n, n, 0}), "a re-asserted stage")
	g.Expect(m.Settled(ctx, waitSetOf(cs), WaitOptions{Objects: true, Live: live})).To(BeTrue(), "health from the reads")

	// Drifted objects are corrected all the same, validated or re-asserted.
	for _, opts := range []ApplyOptions{{}, {Reassert: true}} {
		drifted := liveObject(t, configMap(ns, "cm-0", nil))
		g.Expect(unstructured.SetNestedField(drifted.Object, "changed", "data", "k")).To(Succeed())
		g.Expect(env.Client.Update(ctx, drifted)).To(Succeed())
		cs, err = m.Apply(ctx, owner, objects(), opts)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(cs.Entries[0].Action).To(Equal(ssa.ConfiguredAction))
		g.Expect(liveObject(t, configMap(ns, "cm-0", nil)).Object["data"]).To(HaveKeyWithValue("k", "v"))
	}
}

// A stage validated ahead (Validate, while the stage before it was being
// applied) is not validated again when Apply gets the same objects; other
// objects are.
func TestApply_ValidatedAhead(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m, counts := countedManager(t)
	owner := Owner{Name: "shop", Namespace: "apps", Stage: "db"}
	stage := func(value string) []*unstructured.Unstructured {
		return []*unstructured.Unstructured{
			configMap(ns, "a", map[string]any{"k": value}),
			configMap(ns, "b", map[string]any{"k": value}),
		}
	}

	objects := stage("1")
	checked, err := m.Validate(ctx, owner, objects, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(counts.of()).To(Equal([3]int{0, 2, 0}))
	counts.reset()
	cs, err := m.Apply(ctx, owner, objects, ApplyOptions{Validation: checked})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.CreatedAction))
	g.Expect(counts.of()).To(Equal([3]int{0, 0, 2}), "only the writes")

	// A validation of other objects does not cover these: they are
	// validated again, and what is applied is what Apply was given.
	checked, err = m.Validate(ctx, owner, stage("2"), ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	counts.reset()
	cs, err = m.Apply(ctx, owner, stage("3"), ApplyOptions{Validation: checked})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveEach(ssa.ConfiguredAction))
	g.Expect(counts.of()).To(Equal([3]int{2, 2, 2}), "dry-run, read and write each")
	g.Expect(liveObject(t, configMap(ns, "a", nil)).Object["data"]).To(HaveKeyWithValue("k", "3"))
}

// What changed in the cluster between the validation and the apply is not
// hidden by the validation's answers: an object edited since is read
// afresh and corrected, an object created since by someone else is applied
// over, and a stageset.io/ssa: IfNotPresent one created since is left as
// it is.
func TestApply_ValidationAnswersDoNotHideChanges(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	owner := Owner{Name: "shop", Namespace: "apps", Stage: "db"}
	stage := func() []*unstructured.Unstructured {
		ifNotPresent := configMap(ns, "if-not-present", map[string]any{"k": "ours"})
		ifNotPresent.SetAnnotations(map[string]string{stagesetv1.SSAAnnotation: SSAIfNotPresent})
		return []*unstructured.Unstructured{
			configMap(ns, "existing", map[string]any{"k": "ours"}),
			configMap(ns, "missing", map[string]any{"k": "ours"}),
			ifNotPresent,
		}
	}
	_, err := m.Apply(ctx, owner, stage()[:1], ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	objects := stage()
	checked, err := m.Validate(ctx, owner, objects, ApplyOptions{})
	g.Expect(err).NotTo(HaveOccurred())

	edited := liveObject(t, configMap(ns, "existing", nil))
	g.Expect(unstructured.SetNestedField(edited.Object, "theirs", "data", "k")).To(Succeed())
	g.Expect(env.Client.Update(ctx, edited)).To(Succeed())
	for _, name := range []string{"missing", "if-not-present"} {
		g.Expect(env.Client.Create(ctx, configMap(ns, name, map[string]any{"k": "theirs"}))).To(Succeed())
	}

	cs, err := m.Apply(ctx, owner, objects, ApplyOptions{Validation: checked})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(cs.ToMap()).To(HaveKeyWithValue("ConfigMap/"+ns+"/existing", ssa.ConfiguredAction))
	for _, name := range []string{"existing", "missing"} {
		g.Expect(liveObject(t, configMap(ns, name, nil)).Object["data"]).To(HaveKeyWithValue("k", "ours"), name)
	}
	// An IfNotPresent object created since is left alone.
	g.Expect(cs.ToMap()).To(HaveKeyWithValue("ConfigMap/"+ns+"/if-not-present", ssa.SkippedAction))
	g.Expect(liveObject(t, configMap(ns, "if-not-present", nil)).Object["data"]).To(HaveKeyWithValue("k", "theirs"))
}

// Health is judged from the API server's answers by kstatus's rules: a
// ConfigMap is healthy at once, a Deployment just applied is not (its
// controller has not seen its generation yet) and is waited for.
func TestApply_LiveObjectsJudgeOnlyWhatTheyCan(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	ns := env.NewNamespace(t)
	m := newManager()
	live := NewLiveObjects()
	cs, err := m.Apply(ctx, Owner{Name: "shop", Namespace: "apps", Stage: "web"},
		[]*unstructured.Unstructured{deployment(t, ns, "web"), configMap(ns, "conf", nil)}, ApplyOptions{Live: live})
	g.Expect(err).NotTo(HaveOccurred())
	set := cs.ToObjMetadataSet()
	j, err := newJudge(m.client, m.client.RESTMapper(), nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(m.Settled(ctx, set, WaitOptions{Objects: true, Live: live})).To(BeFalse())
	g.Expect(m.toWait(ctx, set, WaitOptions{Objects: true, Live: live}, j)).To(HaveLen(1))
	g.Expect(m.toWait(ctx, set, WaitOptions{Objects: true, Live: live}, j)[0].GroupKind.Kind).To(Equal("Deployment"))
	g.Expect(m.toWait(ctx, set, WaitOptions{Objects: true}, j)).To(HaveLen(2), "without live objects, everything is waited for")
}

func TestChangesValidation(t *testing.T) {
	entry := func(group, kind string, action ssa.Action) ssa.ChangeSetEntry {
		return ssa.ChangeSetEntry{ObjMetadata: object.ObjMetadata{GroupKind: schema.GroupKind{Group: group, Kind: kind}, Name: "x"}, Action: action}
	}
	for _, tc := range []struct {
		entry ssa.ChangeSetEntry
		want  bool
	}{
		{entry("", "ConfigMap", ssa.CreatedAction), false},
		{entry("apps", "Deployment", ssa.ConfiguredAction), false},
		{entry("", "Secret", ssa.DeletedAction), false},
		{entry("kyverno.io", "ClusterPolicy", ssa.CreatedAction), true},
		{entry("constraints.gatekeeper.sh", "K8sRequiredLabels", ssa.ConfiguredAction), true},
		{entry("example.com", "Widget", ssa.CreatedAction), true},
		{entry("", "Namespace", ssa.UnchangedAction), false},
		{entry("rbac.authorization.k8s.io", "Role", ssa.SkippedAction), false},
		{entry("", "Namespace", ssa.CreatedAction), true},
		{entry("", "ResourceQuota", ssa.ConfiguredAction), true},
		{entry("", "LimitRange", ssa.DeletedAction), true},
		{entry("apiextensions.k8s.io", "CustomResourceDefinition", ssa.ConfiguredAction), true},
		{entry("apiregistration.k8s.io", "APIService", ssa.CreatedAction), true},
		{entry("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", ssa.CreatedAction), true},
		{entry("admissionregistration.k8s.io", "MutatingWebhookConfiguration", ssa.DeletedAction), true},
		{entry("rbac.authorization.k8s.io", "RoleBinding", ssa.CreatedAction), true},
	} {
		cs := ssa.NewChangeSet()
		cs.Add(entry("", "ConfigMap", ssa.UnchangedAction))
		cs.Add(tc.entry)
		if got := ChangesValidation(cs); got != tc.want {
			t.Errorf("%s %s: got %v, want %v", tc.entry.ObjMetadata.GroupKind, tc.entry.Action, got, tc.want)
		}
	}
}
