package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// watchInterval is how often the source directory is read for changes; a
// change is published once it has been stable for one more interval.
const watchInterval = time.Second

// follower streams the rollouts of a StageSet while publishing every change
// of the source directory as a new revision, the loop of `make run --watch`.
type follower struct {
	c          client.Client
	out        io.Writer
	obj        *stagesetv1.StageSet
	src        *localSource
	dir        string
	kubeconfig string
	// timeout is how long a revision may take to be decided before the
	// user is told it is still not Ready.
	timeout  time.Duration
	progress *progress
}

// run follows the rollout of revision, and of every revision published
// after it, until ctx is done. A failed revision does not end it: the user
// fixes the files and the fix rolls out.
func (f *follower) run(ctx context.Context, revision string) error {
	changes := f.src.changes(ctx, watchInterval)
	published := time.Now()
	decided, late, first := false, false, true
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case change, ok := <-changes:
			if !ok {
				return nil
			}
			if change.err != nil {
				fmt.Fprintf(f.out, "✗ %v\n", change.err)
				continue
			}
			rev, err := f.src.publish(ctx, change.tarball)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			fmt.Fprintf(f.out, "\n==> %s changed: published revision %s, an update rolls out\n", f.dir, rev)
			revision, published, decided, late = rev, time.Now(), false, false
		case <-tick.C:
		}

		if err := f.c.Get(ctx, client.ObjectKeyFromObject(f.obj), f.obj); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		f.progress.stages(f.obj)
		if decided {
			continue
		}
		done, failure := decidedAt(f.obj, revision)
		switch {
		case done && failure == nil:
			decided = true
			fmt.Fprintf(f.out, "✔ revision %s is Ready\n", revision)
			if first {
				fmt.Fprintln(f.out)
				if err := printGet(ctx, f.out, f.kubeconfig); err != nil && ctx.Err() == nil {
					return err
				}
			}
		case done:
			decided = true
			// The Ready line above carries the controller's message.
			fmt.Fprintf(f.out, "✗ revision %s failed: %v\n", revision, reasonOf(failure))
		case !late && time.Since(published) > f.timeout:
			late = true
			fmt.Fprintf(f.out, "◎ revision %s is not Ready after %s: %s\n", revision, f.timeout,
				conditions.GetMessage(f.obj, meta.ReadyCondition))
		}
		if decided {
			if first {
				printInspect(f.out, f.kubeconfig, f.obj)
				first = false
			}
			fmt.Fprintf(f.out, "◎ watching %s: a change publishes a new revision (Ctrl-C stops and cleans up)\n", f.dir)
		}
	}
}

// reasonOf is the first part of a decidedAt error: the Ready reason.
func reasonOf(err error) string {
	reason, _, _ := strings.Cut(err.Error(), ": ")
	return reason
}

// decidedAt tells whether the controller has decided the rollout of
// revision: Ready=True with the revision applied, or Ready=False after an
// attempt at it (a build failure names the stage and the file), returned as
// the error; waiting for a dependency or a source is not an outcome. A run
// marks Ready Unknown when it starts, so a Ready=False left by an earlier
// revision is not taken for this one's outcome.
func decidedAt(obj *stagesetv1.StageSet, revision string) (bool, error) {
	if obj.Status.ObservedGeneration != obj.Generation || obj.Status.LastAttemptedRevision != revision {
		return false, nil
	}
	ready := conditions.Get(obj, meta.ReadyCondition)
	switch {
	case ready == nil || ready.Status == metav1.ConditionUnknown:
		return false, nil
	case ready.Status == metav1.ConditionTrue:
		return obj.Status.LastAppliedRevision == revision, nil
	case ready.Reason == stagesetv1.DependencyNotReadyReason || ready.Reason == stagesetv1.SourceNotReadyReason:
		// Waiting on something outside the StageSet heals by itself.
		return false, nil
	default:
		return true, errors.New(ready.Reason + ": " + ready.Message)
	}
}
