package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stageset/stageset-controller/internal/testenv"
)

// rolloutTimeout bounds one rollout or one wait of the benchmark; it is hit
// only when something is broken.
const rolloutTimeout = 20 * time.Minute

// rollout is one StageSet measured against the baseline in a fresh
// controller process: scenarios (a) ordered rollout, (b) hand-off and
// (d) steady state with several stages, (c) with one large stage.
type rollout struct {
	name          string
	stages, count int
	// steady also measures a requestedAt run after Ready.
	steady bool
	// objects builds the stages, named <prefix>s<stage>-...: ConfigMaps
	// (stageObjects) when nil.
	objects func(prefix, revision string, stages, perStage int) [][]*unstructured.Unstructured
	// kinds names them in the hand-off and steady-state rows (" Services,
	// ..."), so that they differ from the ConfigMap rollout's.
	kinds string
	// waitBaseline makes the baseline wait, after each stage, until the
	// stage's Deployments are healthy, as the StageSet does; the plain
	// loop is then reported next to it.
	waitBaseline bool
}

// build returns the objects of the rollout's stages.
func (r rollout) build(prefix, revision string, stages, perStage int) [][]*unstructured.Unstructured {
	if r.objects == nil {
		return stageObjects(prefix, revision, stages, perStage)
	}
	return r.objects(prefix, revision, stages, perStage)
}

// rolloutRun is what one repetition measured.
type rolloutRun struct {
	time, baseline       time.Duration
	use                  usage
	requests, baseReqs   requestCounts
	handoffs             []time.Duration
	steady, steadyBase   time.Duration
	steadyUse            usage
	steadyReqs, baseNoop requestCounts
	// applyOnly is the plain loop when the baseline waits (waitBaseline).
	applyOnly time.Duration
}

func (b *bench) runRollout(ctx context.Context, r rollout) error {
	objects := r.stages * r.count
	main := &result{Scenario: r.name, Objects: objects}
	handoff := &result{Scenario: fmt.Sprintf("hand-off %d×%d%s (per stage boundary)", r.stages, r.count, r.kinds), Objects: r.count}
	steady := &result{Scenario: fmt.Sprintf("steady state (requestedAt) %d×%d%s", r.stages, r.count, r.kinds), Objects: objects}
	for rep := range b.reps {
		run, err := b.rolloutRep(ctx, r)
		if err != nil {
			return fmt.Errorf("%s, repetition %d: %w", r.name, rep+1, err)
		}
		main.add(run.time, run.use, run.requests)
		main.addBaseline(run.baseline, run.baseReqs)
		if r.waitBaseline {
			main.BaselineApplyOnlySeconds = append(main.BaselineApplyOnlySeconds, run.applyOnly.Seconds())
		}
		for _, h := range run.handoffs {
			handoff.Seconds = append(handoff.Seconds, h.Seconds())
		}
		if r.steady {
			steady.add(run.steady, run.steadyUse, run.steadyReqs)
			steady.addBaseline(run.steadyBase, run.baseNoop)
		}
		b.logf("%s, repetition %d: %.2fs (baseline %.2fs), %d requests", r.name, rep+1, run.time.Seconds(), run.baseline.Seconds(), run.requests.Total())
	}
	b.report.Results = append(b.report.Results, main)
	if r.stages > 1 {
		handoff.P90 = percentile(handoff.Seconds, 0.9)
		b.report.Results = append(b.report.Results, handoff)
	}
	if r.steady {
		b.report.Results = append(b.report.Results, steady)
	}
	return nil
}

func (b *bench) rolloutRep(ctx context.Context, r rollout) (*rolloutRun, error) {
	out := &rolloutRun{}
	run := testenv.RandomName("run")
	nsBase, err := createNamespace(ctx, b.client, "baseline")
	if err != nil {
		return nil, err
	}
	ns, err := createNamespace(ctx, b.client, "rollout")
	if err != nil {
		return nil, err
	}
	defer b.cleanup(ctx, nsBase, ns)
	stages := r.build("", "rev-1", r.stages, r.count)

	// The baseline first, while no controller runs: the objects are new,
	// as the controller's are; then a no-op re-apply, the limit of a
	// steady-state run.
	base, err := newBaseline(b.env)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	if out.baseline, out.baseReqs, err = base.Apply(ctx, nsBase, "app", stages); err != nil {
		return nil, err
	}
	if r.steady {
		if out.steadyBase, out.baseNoop, err = base.Apply(ctx, nsBase, "app", stages); err != nil {
			return nil, err
		}
	}
	if r.waitBaseline {
		if err := b.waitingBaseline(ctx, out, nsBase, stages); err != nil {
			return nil, err
		}
	}

	artifact, err := publish(b.env, run+"/rev-1.tar.gz", "rev-1", stages)
	if err != nil {
		return nil, err
	}
	if err := setSource(ctx, b.client, ns, "repo", artifact); err != nil {
		return nil, err
	}
	proc, err := b.startWarm(ctx, run, ns, 4, r.build("warm-up-", "rev-1", 1, 1))
	if err != nil {
		return nil, err
	}
	defer proc.Stop()

	before, use0 := proc.proxy.Snapshot(), mustUsage(proc)
	start := time.Now()
	set := newStageSet(ns, "app", run, "repo", r.stages, nil)
	if err := b.client.Create(ctx, set); err != nil {
		return nil, err
	}
	key := ns + "/app"
	readyAt, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, []string{key}, revision("rev-1"))
	if err != nil {
		return nil, err
	}
	out.time = readyAt.Sub(start)
	out.requests = proc.proxy.Snapshot().Sub(before)
	out.use = mustUsage(proc).since(use0)
	if out.handoffs, err = b.handoffs(ns, stages); err != nil {
		return nil, err
	}
	if !r.steady {
		return out, nil
	}

	before, use0 = proc.proxy.Snapshot(), mustUsage(proc)
	token := time.Now().Format(time.RFC3339Nano)
	start = time.Now()
	patch := client.MergeFrom(set.DeepCopy())
	set.Annotations = map[string]string{meta.ReconcileRequestAnnotation: token}
	if err := b.client.Patch(ctx, set, patch); err != nil {
		return nil, err
	}
	handledAt, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, []string{key}, func(s readyState) bool {
		return s.Handled == token && s.Revision == "rev-1"
	})
	if err != nil {
		return nil, err
	}
	out.steady = handledAt.Sub(start)
	out.steadyReqs = proc.proxy.Snapshot().Sub(before)
	out.steadyUse = mustUsage(proc).since(use0)
	return out, nil
}

// handoffs returns, for each stage boundary, the time between stage k
// settled (its last object seen, or seen healthy for a Deployment) and the
// first object of stage k+1 seen by the watch.
func (b *bench) handoffs(ns string, stages [][]*unstructured.Unstructured) ([]time.Duration, error) {
	var out []time.Duration
	var lastOfPrev time.Time
	for s, objects := range stages {
		var first, last time.Time
		for _, obj := range objects {
			key := ns + "/" + obj.GetName()
			at, ok := b.tracker.CreatedAt(key)
			if !ok {
				return nil, fmt.Errorf("%s was never seen", key)
			}
			if first.IsZero() || at.Before(first) {
				first = at
			}
			if s == len(stages)-1 {
				continue
			}
			if at, ok = b.tracker.SettledAt(key); !ok {
				return nil, fmt.Errorf("%s was never seen healthy", key)
			}
			if at.After(last) {
				last = at
			}
		}
		if s > 0 {
			out = append(out, first.Sub(lastOfPrev))
		}
		lastOfPrev = last
	}
	return out, nil
}

// startWarm starts a fresh controller for the run and waits until it has
// rolled out a one-object StageSet: the process is up, its caches synced
// and its discovery done, as in a controller that has been running.
func (b *bench) startWarm(ctx context.Context, run, ns string, concurrent int, warm [][]*unstructured.Unstructured) (*controllerProcess, error) {
	artifact, err := publish(b.env, run+"/warm-up.tar.gz", "rev-1", warm)
	if err != nil {
		return nil, err
	}
	if err := setSource(ctx, b.client, ns, "warm-up", artifact); err != nil {
		return nil, err
	}
	proc, err := startController(b.binary, b.dir, b.env.Config, run, concurrent)
	if err != nil {
		return nil, err
	}
	if err := b.client.Create(ctx, newStageSet(ns, "warm-up", run, "warm-up", 1, nil)); err != nil {
		proc.Stop()
		return nil, err
	}
	if _, err := b.tracker.WaitReady(ctx, proc, rolloutTimeout, []string{ns + "/warm-up"}, revision("rev-1")); err != nil {
		proc.Stop()
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	return proc, nil
}

// revision matches a StageSet Ready at the revision.
func revision(rev string) func(readyState) bool {
	return func(s readyState) bool { return s.Revision == rev }
}

// cleanup deletes the objects of the namespaces once a repetition is over,
// so that the API server does not grow from one repetition to the next.
// StageSets stay: no controller selects them any more.
func (b *bench) cleanup(ctx context.Context, namespaces ...string) {
	if b.dropNamespaces {
		b.deleteNamespaces(ctx, namespaces...)
		return
	}
	for _, ns := range namespaces {
		_ = b.client.DeleteAllOf(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}},
			client.InNamespace(ns), client.MatchingLabels{objectLabel: "true"})
	}
}
