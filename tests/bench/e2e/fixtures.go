package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// objectLabel marks every object a benchmark StageSet applies, so that the
// tracker watches those and no other ConfigMap.
const objectLabel = "bench.stageset.io/object"

// configMap is a ConfigMap of four small data keys, as in the
// micro-benchmarks; revision is in its data, so a new revision changes it.
func configMap(name, revision string) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "labels": map[string]any{objectLabel: "true"}},
		"data": map[string]any{
			"revision": revision,
			"a":        strings.Repeat("a", 32),
			"b":        strings.Repeat("b", 32),
			"c":        strings.Repeat("c", 32),
		},
	}}
	return obj
}

// stageObjects returns the ConfigMaps of stages × perStage objects named
// <prefix>s<stage>-<i>, stage by stage.
func stageObjects(prefix, revision string, stages, perStage int) [][]*unstructured.Unstructured {
	out := make([][]*unstructured.Unstructured, stages)
	for s := range stages {
		for i := range perStage {
			out[s] = append(out[s], configMap(fmt.Sprintf("%ss%d-%04d", prefix, s, i), revision))
		}
	}
	return out
}

// stagePath is the folder of stage s in an artifact.
func stagePath(s int) string { return fmt.Sprintf("stage-%d", s) }

// publish stores the stages as an artifact, one folder of one multi-document
// file per stage, and returns it as source-controller would report it.
func publish(env *apiServer, path, revision string, stages [][]*unstructured.Unstructured) (*meta.Artifact, error) {
	files := map[string]string{}
	for s, objects := range stages {
		var docs []string
		for _, obj := range objects {
			doc, err := yaml.Marshal(obj.Object)
			if err != nil {
				return nil, err
			}
			docs = append(docs, string(doc))
		}
		files[stagePath(s)+"/objects.yaml"] = strings.Join(docs, "---\n")
	}
	return env.Artifacts.Publish(path, revision, files)
}

// newStageSet returns a StageSet of the run with one stage per folder of
// the source's artifact, applied into its own namespace.
func newStageSet(ns, name, run, source string, stages int, substitute map[string]string) *stagesetv1.StageSet {
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{runLabel: run}},
		Spec: stagesetv1.StageSetSpec{
			Interval:        metav1.Duration{Duration: time.Hour},
			Timeout:         &metav1.Duration{Duration: 15 * time.Minute},
			SourceRef:       &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: source},
			TargetNamespace: ns,
		},
	}
	for s := range stages {
		stage := stagesetv1.Stage{Name: stagePath(s), Path: "./" + stagePath(s)}
		if substitute != nil {
			stage.PostBuild = &stagesetv1.PostBuild{Substitute: substitute}
		}
		obj.Spec.Stages = append(obj.Spec.Stages, stage)
	}
	return obj
}

// createNamespace creates a namespace with a random name.
func createNamespace(ctx context.Context, c client.Client, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testenv.RandomName(prefix)}}
	return ns.Name, c.Create(ctx, ns)
}

// setSource creates the GitRepository or publishes a new artifact on it, as
// source-controller does on a new revision.
func setSource(ctx context.Context, c client.Client, ns, name string, artifact *meta.Artifact) error {
	src, err := testenv.NewSource(stagesetv1.GitRepositoryKind, ns, name)
	if err != nil {
		return err
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(src), src); err != nil {
		_, err := testenv.CreateSource(ctx, c, stagesetv1.GitRepositoryKind, ns, name, artifact)
		return err
	}
	return testenv.SetArtifact(ctx, c, src, artifact)
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// baselineWorkers is the concurrency of the plain apply loop: the requests
// the controller keeps in flight per stage (internal/apply).
const baselineWorkers = 4

// baseline is the limit a rollout is measured against: a client-go
// server-side-apply loop of the same objects into ns, stage after stage in
// the same order, baselineWorkers requests in flight, no client-side
// throttling, through its own counting proxy. The objects carry the owner
// labels the controller sets, so both send the same bytes.
type baseline struct {
	proxy *countingProxy
	c     client.Client
	// wait, when set, runs after each stage, inside the time: the loop
	// then waits for health between stages as a StageSet does.
	wait func(ctx context.Context, objects []*unstructured.Unstructured) error
}

func newBaseline(env *apiServer) (*baseline, error) {
	proxy, err := startProxy(env.Config)
	if err != nil {
		return nil, err
	}
	c, err := client.New(proxy.Config(), client.Options{Scheme: env.Scheme})
	if err != nil {
		proxy.Close()
		return nil, err
	}
	// Discovery is set-up, as the controller's is done by its warm-up.
	for _, gvk := range []schema.GroupVersionKind{configMapKind, serviceKind, serviceAccountKind, deploymentKind} {
		if _, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
			proxy.Close()
			return nil, err
		}
	}
	return &baseline{proxy: proxy, c: c}, nil
}

func (b *baseline) Close() { b.proxy.Close() }

// Apply applies the stages into ns and returns the wall time and the
// requests sent.
func (b *baseline) Apply(ctx context.Context, ns, owner string, stages [][]*unstructured.Unstructured) (time.Duration, requestCounts, error) {
	var owned [][]*unstructured.Unstructured
	for s, objects := range stages {
		var out []*unstructured.Unstructured
		for _, obj := range objects {
			out = append(out, ownedBy(obj, apply.Owner{Name: owner, Namespace: ns, Stage: stagePath(s)}))
		}
		owned = append(owned, out)
	}
	return b.ApplyStages(ctx, owned)
}

// ApplyStages applies the objects as they are, stage after stage.
func (b *baseline) ApplyStages(ctx context.Context, stages [][]*unstructured.Unstructured) (time.Duration, requestCounts, error) {
	before := b.proxy.Snapshot()
	start := time.Now()
	for _, objects := range stages {
		err := parallel(len(objects), baselineWorkers, func(i int) error {
			return b.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(objects[i].DeepCopy()),
				client.FieldOwner("bench"), client.ForceOwnership)
		})
		if err != nil {
			return 0, nil, fmt.Errorf("baseline apply: %w", err)
		}
		if b.wait != nil {
			if err := b.wait(ctx, objects); err != nil {
				return 0, nil, fmt.Errorf("baseline wait: %w", err)
			}
		}
	}
	return time.Since(start), b.proxy.Snapshot().Sub(before), nil
}

// ownedBy returns a copy of obj in the owner's namespace with the owner
// labels the controller sets.
func ownedBy(obj *unstructured.Unstructured, owner apply.Owner) *unstructured.Unstructured {
	obj = obj.DeepCopy()
	obj.SetNamespace(owner.Namespace)
	l := obj.GetLabels()
	maps.Copy(l, owner.Labels())
	obj.SetLabels(l)
	return obj
}

// adminClient is an uncached admin client without client-side throttling,
// for the set-up.
func adminClient(env *apiServer) (client.Client, error) {
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = -1, -1
	return client.New(cfg, client.Options{Scheme: env.Scheme})
}
