package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/fluxcd/pkg/ssa"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// The kinds of the mixed rollout.
var (
	serviceKind        = schema.GroupVersionKind{Version: "v1", Kind: "Service"}
	serviceAccountKind = schema.GroupVersionKind{Version: "v1", Kind: "ServiceAccount"}
	deploymentKind     = schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
)

// namespaceTimeout bounds the deletion of a repetition's namespaces; past
// it the benchmark goes on, saying so.
const namespaceTimeout = 5 * time.Minute

// runMixed is scenarios (a) and (b) with Services, ServiceAccounts and
// Deployments: on the local control plane, started for this scenario
// only, where kube-controller-manager, kube-scheduler and kwok make
// Deployments healthy, so that the StageSet really waits for each stage.
// The baseline waits too, stage after stage; the plain loop is reported
// next to it.
func (b *bench) runMixed(ctx context.Context) error {
	b.logf("starting the local control plane for the mixed rollout")
	srv, stop, err := startLocal(ctx, b.dir)
	if err != nil {
		return err
	}
	defer stop()
	c, err := adminClient(srv)
	if err != nil {
		return err
	}
	trackCtx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	t, err := startTracker(trackCtx, srv, serviceKind, serviceAccountKind, deploymentKind)
	if err != nil {
		return err
	}
	local := *b
	local.env, local.client, local.tracker, local.dropNamespaces = srv, c, t, true
	s := b.sizes
	const kinds = " Services, ServiceAccounts, Deployments"
	return local.runRollout(ctx, rollout{
		name:   fmt.Sprintf("ordered rollout %d×%d%s", s.MixedStages, s.MixedPerStage, kinds),
		stages: s.MixedStages, count: s.MixedPerStage,
		objects: mixedObjects, kinds: kinds, waitBaseline: true,
	})
}

// mixedObjects returns stages × perStage objects, a third each of
// Deployments, Services and ServiceAccounts (Deployments first when
// perStage is not a multiple of three), named <prefix>s<stage>-<kind>-<i>.
// Each stage is in the order the controller applies it (fluxcd/pkg/ssa's
// kind order: ServiceAccounts, Services, Deployments), so that the
// baseline sends the same requests in the same order.
func mixedObjects(prefix, revision string, stages, perStage int) [][]*unstructured.Unstructured {
	out := make([][]*unstructured.Unstructured, stages)
	for s := range stages {
		for i := range perStage {
			base := fmt.Sprintf("%ss%d-", prefix, s)
			var obj *unstructured.Unstructured
			switch i % 3 {
			case 0:
				obj = deployment(fmt.Sprintf("%sdeploy-%04d", base, i), revision)
			case 1:
				obj = service(fmt.Sprintf("%ssvc-%04d", base, i), revision)
			default:
				obj = serviceAccount(fmt.Sprintf("%ssa-%04d", base, i), revision)
			}
			out[s] = append(out[s], obj)
		}
		sort.Sort(ssa.SortableUnstructureds(out[s]))
	}
	return out
}

// benchObject is an object of the kind with the benchmark's label and the
// revision in an annotation.
func benchObject(gvk schema.GroupVersionKind, name, revision string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name":        name,
			"labels":      map[string]any{objectLabel: "true"},
			"annotations": map[string]any{"bench.stageset.io/revision": revision},
		},
	}}
	obj.SetGroupVersionKind(gvk)
	return obj
}

// deployment is one replica of a pod kwok runs (no image is pulled), with
// no service account token: the local control plane signs none.
func deployment(name, revision string) *unstructured.Unstructured {
	obj := benchObject(deploymentKind, name, revision)
	obj.Object["spec"] = map[string]any{
		"replicas": int64(1),
		"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
		"template": map[string]any{
			"metadata": map[string]any{"labels": map[string]any{"app": name}},
			"spec": map[string]any{
				"automountServiceAccountToken": false,
				"containers":                   []any{map[string]any{"name": "main", "image": "bench.invalid/app:1"}},
			},
		},
	}
	return obj
}

// service is headless: the test API server's service range (a /24) holds
// fewer cluster IPs than the benchmark has Services.
func service(name, revision string) *unstructured.Unstructured {
	obj := benchObject(serviceKind, name, revision)
	obj.Object["spec"] = map[string]any{
		"clusterIP": "None",
		"selector":  map[string]any{"app": name},
		"ports":     []any{map[string]any{"name": "http", "port": int64(80)}},
	}
	return obj
}

func serviceAccount(name, revision string) *unstructured.Unstructured {
	return benchObject(serviceAccountKind, name, revision)
}

// waitingBaseline runs the baseline of a mixed rollout: the plain loop
// into nsBase has run (out.baseline); it becomes out.applyOnly, and the
// loop that waits, after each stage, until the stage's Deployments are
// healthy (kstatus, from the tracker's watch) runs into a namespace of its
// own and becomes out.baseline, the one the ratio uses. Both namespaces
// are gone before the controller starts, so it runs on a quiet control
// plane as the loops did.
func (b *bench) waitingBaseline(ctx context.Context, out *rolloutRun, nsBase string, stages [][]*unstructured.Unstructured) error {
	out.applyOnly = out.baseline
	// The plain loop's Deployments are left to settle outside its time.
	if err := b.waitHealthy(ctx, applied(nsBase, stages...)); err != nil {
		return err
	}
	ns, err := createNamespace(ctx, b.client, "baseline-wait")
	if err != nil {
		return err
	}
	base, err := newBaseline(b.env)
	if err != nil {
		return err
	}
	defer base.Close()
	base.wait = b.waitHealthy
	if out.baseline, out.baseReqs, err = base.Apply(ctx, ns, "app", stages); err != nil {
		return err
	}
	b.cleanup(ctx, nsBase, ns)
	return nil
}

// applied returns the objects of stages as the baseline applies them into
// ns.
func applied(ns string, stages ...[]*unstructured.Unstructured) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, objects := range stages {
		for _, obj := range objects {
			obj = obj.DeepCopy()
			obj.SetNamespace(ns)
			out = append(out, obj)
		}
	}
	return out
}

// waitHealthy waits until the Deployments among objects are healthy.
func (b *bench) waitHealthy(ctx context.Context, objects []*unstructured.Unstructured) error {
	var keys []string
	for _, obj := range objects {
		if obj.GroupVersionKind() == deploymentKind {
			keys = append(keys, obj.GetNamespace()+"/"+obj.GetName())
		}
	}
	return b.tracker.WaitHealthy(ctx, rolloutTimeout, keys)
}

// deleteNamespaces deletes the namespaces and waits until
// kube-controller-manager has emptied and removed them. The StageSets in
// them lose their finalizer first: their controller is stopped, and the
// namespace deletion removes what it would have pruned.
func (b *bench) deleteNamespaces(ctx context.Context, namespaces ...string) {
	start := time.Now()
	for _, name := range namespaces {
		var sets stagesetv1.StageSetList
		if err := b.client.List(ctx, &sets, client.InNamespace(name)); err != nil && !apierrors.IsNotFound(err) {
			b.logf("listing the StageSets of %s: %v", name, err)
		}
		for i := range sets.Items {
			set := &sets.Items[i]
			patch := client.MergeFrom(set.DeepCopy())
			set.Finalizers = nil
			if err := b.client.Patch(ctx, set, patch); err != nil && !apierrors.IsNotFound(err) {
				b.logf("removing the finalizer of %s/%s: %v", name, set.Name, err)
			}
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := b.client.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			b.logf("deleting namespace %s: %v", name, err)
		}
	}
	for _, name := range namespaces {
		for {
			err := b.client.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{})
			if apierrors.IsNotFound(err) {
				break
			}
			if time.Since(start) > namespaceTimeout || ctx.Err() != nil {
				b.logf("namespace %s still there after %s; going on", name, time.Since(start).Round(time.Second))
				break
			}
			time.Sleep(time.Second)
		}
	}
	b.logf("namespaces %s deleted in %.1fs", strings.Join(namespaces, ", "), time.Since(start).Seconds())
}
