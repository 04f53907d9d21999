package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// fleet is many StageSets of fleetStages stages × fleetObjects ConfigMaps,
// spread over sources (one per namespace): the scale and storm scenarios.
type fleet struct {
	run        string
	namespaces []string
	keys       []string
}

const (
	fleetStages  = 3
	fleetObjects = 4
)

// fleetArtifact is the artifact of one fleet source at revision: the names
// are substituted per StageSet (postBuild), so that each applies its own.
func fleetArtifact(revision string) [][]*unstructured.Unstructured {
	return stageObjects("${name}-", revision, fleetStages, fleetObjects)
}

// newFleet creates n StageSets over sources sources at revision, without a
// controller running.
func (b *bench) newFleet(ctx context.Context, n, sources int, revision string) (*fleet, error) {
	f := &fleet{run: testenv.RandomName("run")}
	for range min(sources, n) {
		ns, err := createNamespace(ctx, b.client, "fleet")
		if err != nil {
			return nil, err
		}
		f.namespaces = append(f.namespaces, ns)
	}
	if err := f.publish(ctx, b, revision); err != nil {
		return nil, err
	}
	for i := range n {
		f.keys = append(f.keys, fmt.Sprintf("%s/app-%04d", f.namespaces[i%len(f.namespaces)], i))
	}
	err := parallel(n, 8, func(i int) error {
		ns, name, _ := strings.Cut(f.keys[i], "/")
		return b.client.Create(ctx, newStageSet(ns, name, f.run, "repo", fleetStages, map[string]string{"name": name}))
	})
	return f, err
}

// publish makes revision the artifact of every source, all at once, as
// when a commit lands in a repository many sources follow.
func (f *fleet) publish(ctx context.Context, b *bench, revision string) error {
	artifact, err := publish(b.env, f.run+"/"+revision+".tar.gz", revision, fleetArtifact(revision))
	if err != nil {
		return err
	}
	return parallel(len(f.namespaces), len(f.namespaces), func(i int) error {
		return setSource(ctx, b.client, f.namespaces[i], "repo", artifact)
	})
}

// runScale is scenario (e): n StageSets created before a fresh controller
// with --concurrent starts; the time is from the start of the process until
// all are Ready.
func (b *bench) runScale(ctx context.Context, n, concurrent int) error {
	all := &result{Scenario: fmt.Sprintf("scale %d×%d×%d, --concurrent %d: all Ready", n, fleetStages, fleetObjects, concurrent), Objects: n * fleetStages * fleetObjects}
	p50 := &result{Scenario: fmt.Sprintf("scale %d×%d×%d, --concurrent %d: p50 per StageSet", n, fleetStages, fleetObjects, concurrent), Objects: fleetStages * fleetObjects}
	for rep := range b.reps {
		f, err := b.newFleet(ctx, n, b.sizes.Sources, "rev-1")
		if err != nil {
			return err
		}
		base, reqs, namespaces, err := b.fleetBaseline(ctx, f)
		if err != nil {
			return err
		}
		all.addBaseline(base, reqs)
		b.cleanup(ctx, namespaces...)
		proc, err := startController(b.binary, b.dir, b.env.Config, f.run, concurrent)
		if err != nil {
			return err
		}
		last, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, f.keys, revision("rev-1"))
		if err != nil {
			proc.Stop()
			return fmt.Errorf("%s, repetition %d: %w", all.Scenario, rep+1, err)
		}
		use, reqs := mustUsage(proc), proc.proxy.Snapshot()
		proc.Stop()
		var perSet, durations []float64
		for _, key := range f.keys {
			at, _ := b.tracker.ReadyAt(key, revision("rev-1"))
			perSet = append(perSet, at.Sub(proc.started).Seconds())
			if set := b.tracker.StageSet(key); set != nil && len(set.Status.History) > 0 {
				durations = append(durations, set.Status.History[0].Duration.Seconds())
			}
		}
		all.add(last.Sub(proc.started), use, reqs)
		if w := proc.proxy.FirstWatch(); !w.IsZero() {
			all.StartupSeconds = append(all.StartupSeconds, w.Sub(proc.started).Seconds())
		}
		p50.Seconds = append(p50.Seconds, percentile(perSet, 0.5))
		p50.RolloutSeconds = append(p50.RolloutSeconds, percentile(durations, 0.5))
		b.logf("%s, repetition %d: %.1fs, p50 %.1fs, peak RSS %.0f MiB", all.Scenario, rep+1,
			last.Sub(proc.started).Seconds(), percentile(perSet, 0.5), float64(use.PeakRSS)/1024)
		b.cleanup(ctx, f.namespaces...)
	}
	b.report.Results = append(b.report.Results, all, p50)
	return nil
}

// fleetBaseline applies the objects of every StageSet of the fleet, each
// StageSet's stage after stage, with the plain apply loop into namespaces
// of its own, before the controller starts: the limit of the scale
// scenario. It returns the namespaces, to clean up.
func (b *bench) fleetBaseline(ctx context.Context, f *fleet) (time.Duration, requestCounts, []string, error) {
	var namespaces []string
	for range f.namespaces {
		ns, err := createNamespace(ctx, b.client, "baseline")
		if err != nil {
			return 0, nil, nil, err
		}
		namespaces = append(namespaces, ns)
	}
	var all []*unstructured.Unstructured
	for i, key := range f.keys {
		_, name, _ := strings.Cut(key, "/")
		for s, objects := range stageObjects(name+"-", "rev-1", fleetStages, fleetObjects) {
			owner := apply.Owner{Name: name, Namespace: namespaces[i%len(namespaces)], Stage: stagePath(s)}
			for _, obj := range objects {
				all = append(all, ownedBy(obj, owner))
			}
		}
	}
	base, err := newBaseline(b.env)
	if err != nil {
		return 0, nil, nil, err
	}
	defer base.Close()
	d, reqs, err := base.ApplyStages(ctx, [][]*unstructured.Unstructured{all})
	return d, reqs, namespaces, err
}

// runStorm is scenario (f): n StageSets Ready at rev-1, then every source
// moves to rev-2 at once; the time is until all are Ready at rev-2. Then,
// for lost updates, every source moves to rev-3 and, while those runs are
// in flight, to rev-4: every StageSet must end at rev-4, and so must every
// object it applied.
func (b *bench) runStorm(ctx context.Context, n int) error {
	res := &result{Scenario: fmt.Sprintf("source storm %d×%d×%d", n, fleetStages, fleetObjects), Objects: n * fleetStages * fleetObjects}
	for rep := range b.reps {
		f, err := b.newFleet(ctx, n, b.sizes.Sources, "rev-1")
		if err != nil {
			return err
		}
		proc, err := startController(b.binary, b.dir, b.env.Config, f.run, 4)
		if err != nil {
			return err
		}
		err = b.storm(ctx, f, proc, res)
		proc.Stop()
		if err != nil {
			return fmt.Errorf("%s, repetition %d: %w", res.Scenario, rep+1, err)
		}
		if err := b.checkNoLostUpdate(ctx, f, "rev-4"); err != nil {
			return fmt.Errorf("%s, repetition %d: %w", res.Scenario, rep+1, err)
		}
		b.cleanup(ctx, f.namespaces...)
	}
	res.NoLostUpdate = true
	b.report.Results = append(b.report.Results, res)
	return nil
}

func (b *bench) storm(ctx context.Context, f *fleet, proc *controllerProcess, res *result) error {
	if _, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, f.keys, revision("rev-1")); err != nil {
		return err
	}
	before, use0 := proc.proxy.Snapshot(), mustUsage(proc)
	start := time.Now()
	if err := f.publish(ctx, b, "rev-2"); err != nil {
		return err
	}
	last, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, f.keys, revision("rev-2"))
	if err != nil {
		return err
	}
	res.add(last.Sub(start), mustUsage(proc).since(use0), proc.proxy.Snapshot().Sub(before))
	b.logf("%s: %.1fs", res.Scenario, last.Sub(start).Seconds())

	// Two revisions in a row: rev-4 lands while rev-3 is being rolled out.
	start = time.Now()
	if err := f.publish(ctx, b, "rev-3"); err != nil {
		return err
	}
	if _, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, f.keys[:1], revision("rev-3")); err != nil {
		return err
	}
	if err := f.publish(ctx, b, "rev-4"); err != nil {
		return err
	}
	last, err = b.tracker.WaitReady(ctx, proc, rolloutTimeout, f.keys, revision("rev-4"))
	if err != nil {
		return fmt.Errorf("lost update: %w", err)
	}
	res.SecondStormSeconds = append(res.SecondStormSeconds, last.Sub(start).Seconds())
	return nil
}

// checkNoLostUpdate reads every StageSet and every object from the API
// server: each StageSet's lastAppliedRevision is its source's revision, and
// each object holds that revision's data.
func (b *bench) checkNoLostUpdate(ctx context.Context, f *fleet, rev string) error {
	for _, key := range f.keys {
		ns, name, _ := strings.Cut(key, "/")
		set := newStageSet(ns, name, f.run, "repo", 0, nil)
		if err := b.client.Get(ctx, client.ObjectKeyFromObject(set), set); err != nil {
			return err
		}
		if got := set.Status.LastAppliedRevision; got != rev {
			return fmt.Errorf("lost update: %s has lastAppliedRevision %q, its source is at %q", key, got, rev)
		}
	}
	var objects []corev1.ConfigMap
	for _, ns := range f.namespaces {
		var list corev1.ConfigMapList
		if err := b.client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{objectLabel: "true"}); err != nil {
			return err
		}
		objects = append(objects, list.Items...)
	}
	return objectsAt(objects, len(f.keys)*fleetStages*fleetObjects, rev)
}

// objectsAt checks that there are want objects, all holding the data of
// revision rev.
func objectsAt(objects []corev1.ConfigMap, want int, rev string) error {
	for _, cm := range objects {
		if cm.Data["revision"] != rev {
			return fmt.Errorf("lost update: %s/%s holds %q, its source is at %q", cm.Namespace, cm.Name, cm.Data["revision"], rev)
		}
	}
	if len(objects) != want {
		return fmt.Errorf("%d objects applied, want %d", len(objects), want)
	}
	return nil
}
