package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/testenv"
)

var env *testenv.Environment

// TestMain starts the test bed only when a benchmark is to run: starting
// kube-apiserver and etcd takes seconds, and `go test ./...` runs only the
// unit tests of this package.
func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(testenv.Run(m, &env))
}

// sizes are the stage sizes measured: one object, a typical application, a
// large platform stage.
var sizes = []int{1, 100, 1000}

const (
	// controllerFieldManager is controller.ControllerName, the field manager
	// of every object the controller applies.
	controllerFieldManager = "stageset-controller"
	// plainFieldManager is the field manager of the plain SSA loop.
	plainFieldManager = "bench"
	// waitTimeout bounds one health check; ConfigMaps are Current at once, so
	// it is only hit when something is broken.
	waitTimeout = 2 * time.Minute
)

// owner is the stage the objects belong to. The plain loop sets the same
// labels, so both benchmarks send the same bytes per object.
var owner = apply.Owner{Name: "bench", Namespace: "bench", Stage: "app"}

// BenchmarkSteadyState measures one steady-state run of a stage as the
// controller does it: apply.Manager.Apply re-asserting the objects (ssa,
// which reads and dry-runs every object and writes nothing since nothing
// drifted; no validation pass, as the objects passed it when they were
// applied) followed by apply.Manager.Wait on the applied objects, which
// judges ConfigMaps from what Apply read (apply.LiveObjects).
func BenchmarkSteadyState(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			ctx := context.Background()
			kube, counter := countedClient(b)
			mgr := apply.NewManager(kube, controllerFieldManager)
			ns := env.NewNamespace(b)
			objects := configMaps(ns, n)
			wait := apply.WaitOptions{Objects: true, Timeout: waitTimeout}

			// The first run creates the objects; the measured runs find them
			// unchanged.
			cs, err := mgr.Apply(ctx, owner, objects, apply.ApplyOptions{})
			if err != nil {
				b.Fatalf("creating the objects: %v", err)
			}
			if err := mgr.Wait(ctx, cs.ToObjMetadataSet(), wait); err != nil {
				b.Fatalf("waiting for the objects: %v", err)
			}
			before := liveVersions(b, ns)

			// The health check's share of a run, to tell apart the cost of
			// Apply from the cost of Wait (one poll).
			var waited time.Duration
			runs := measure(b, n, counter, func() {
				// As the controller does: Wait judges from what Apply read.
				live := apply.NewLiveObjects()
				wait.Live = live
				cs, err := mgr.Apply(ctx, owner, objects, apply.ApplyOptions{Reassert: true, Live: live})
				if err != nil {
					b.Fatalf("applying: %v", err)
				}
				for _, e := range cs.Entries {
					if e.Action != ssa.UnchangedAction {
						b.Fatalf("not a steady state: %s was %s", e.Subject, e.Action)
					}
				}
				start := time.Now()
				if err := mgr.Wait(ctx, cs.ToObjMetadataSet(), wait); err != nil {
					b.Fatalf("waiting: %v", err)
				}
				waited += time.Since(start)
			})
			b.ReportMetric(float64(waited.Nanoseconds())/1e6/float64(runs), "wait-ms/op")
			expectUnchanged(b, ns, before)
		})
	}
}

// BenchmarkPlainSSA is the baseline: what any server-side-apply client pays
// at least, one apply request per object, sent one after the other, with no
// validation pass, no drift detection and no health check.
func BenchmarkPlainSSA(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			ctx := context.Background()
			kube, counter := countedClient(b)
			ns := env.NewNamespace(b)
			objects := configMaps(ns, n)
			for _, obj := range objects {
				obj.SetLabels(owner.Labels())
			}
			applyAll := func() {
				for _, obj := range objects {
					// client.Apply sends the same PATCH (application/apply-patch+yaml)
					// as Patch with the deprecated client.Apply patch type.
					err := kube.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj.DeepCopy()),
						client.FieldOwner(plainFieldManager), client.ForceOwnership)
					if err != nil {
						b.Fatalf("applying %s: %v", obj.GetName(), err)
					}
				}
			}

			applyAll()
			before := liveVersions(b, ns)
			measure(b, n, counter, applyAll)
			expectUnchanged(b, ns, before)
		})
	}
}

// measure runs op in the benchmark loop and reports, next to ns/op, the
// requests each run sent (in all, per object, and by sort) and the wall time
// per object. It returns the number of runs.
func measure(b *testing.B, objects int, counter *requestCounter, op func()) int {
	b.Helper()
	start := counter.Snapshot()
	runs := 0
	for b.Loop() {
		op()
		runs++
	}
	sent := counter.Snapshot().Sub(start)
	perRun := func(v int64) float64 { return float64(v) / float64(runs) }
	perObject := func(v int64) float64 { return perRun(v) / float64(objects) }

	b.ReportMetric(perRun(sent.Total()), "requests/op")
	b.ReportMetric(perObject(sent.Total()), "requests/object")
	b.ReportMetric(perObject(sent.Gets), "gets/object")
	b.ReportMetric(perObject(sent.DryRuns), "dryruns/object")
	b.ReportMetric(perObject(sent.Writes), "writes/object")
	b.ReportMetric(perObject(b.Elapsed().Nanoseconds())/1e6, "ms/object")
	return runs
}

// countedClient returns an uncached client built the way the controller
// builds its per-run client (impersonation.Factory.ClientFor): its own HTTP
// client and dynamic REST mapper. Client-side throttling is off, as in the
// controller on any API server with priority and fairness (fluxcd/pkg/runtime
// client.GetConfigOrDie), so the numbers measure the API server and the
// number of requests, not a token bucket. Discovery for ConfigMaps is done
// here, so it is not counted in the runs.
func countedClient(b *testing.B) (client.Client, *requestCounter) {
	b.Helper()
	counter := &requestCounter{}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, -1
	cfg.Wrap(counter.Wrap)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		b.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		b.Fatal(err)
	}
	kube, err := client.New(cfg, client.Options{Scheme: env.Scheme, Mapper: mapper, HTTPClient: httpClient})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := mapper.RESTMapping(configMapGVK.GroupKind(), configMapGVK.Version); err != nil {
		b.Fatal(err)
	}
	return kube, counter
}

var configMapGVK = schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}

// configMaps returns n ConfigMap manifests of a few small keys each, about
// the size of an application's settings.
func configMaps(ns string, n int) []*unstructured.Unstructured {
	objects := make([]*unstructured.Unstructured, n)
	for i := range objects {
		objects[i] = &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1",
			"kind":       "ConfigMap",
			"metadata":   map[string]any{"name": fmt.Sprintf("settings-%04d", i), "namespace": ns},
			"data": map[string]any{
				"LOG_LEVEL":    "info",
				"LISTEN_ADDR":  ":8080",
				"DATABASE_URL": fmt.Sprintf("postgres://db-%d.%s.svc:5432/app", i, ns),
				"FEATURES":     "search,checkout,recommendations",
			},
		}}
	}
	return objects
}

// liveVersions returns the resourceVersion of every ConfigMap of ns, read
// with the bed's own client so the reads are not counted.
func liveVersions(b *testing.B, ns string) map[string]string {
	b.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(configMapGVK.GroupVersion().WithKind("ConfigMapList"))
	if err := env.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		b.Fatalf("listing ConfigMaps: %v", err)
	}
	versions := make(map[string]string, len(list.Items))
	for _, item := range list.Items {
		versions[item.GetName()] = item.GetResourceVersion()
	}
	return versions
}

// expectUnchanged fails the benchmark when a measured run wrote to an object:
// the numbers would not be those of a steady state.
func expectUnchanged(b *testing.B, ns string, before map[string]string) {
	b.Helper()
	after := liveVersions(b, ns)
	for name, rv := range before {
		if after[name] != rv {
			b.Fatalf("ConfigMap %s/%s was written during the runs (resourceVersion %s -> %s)", ns, name, rv, after[name])
		}
	}
}
