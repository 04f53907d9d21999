package action

import (
	"context"
	"fmt"
	"time"

	"github.com/fluxcd/pkg/runtime/cel"
	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// wait sleeps for a wait action's duration, or polls its target until its
// expression holds. The action's timeout, carried by ctx, bounds both.
func (r *Runner) wait(ctx context.Context, w *stagesetv1.WaitAction) error {
	if w.Duration != nil {
		return sleep(ctx, w.Duration.Duration)
	}
	if w.Target == nil || w.Expr == "" {
		return fmt.Errorf("a wait action needs a duration, or a target and an expr")
	}
	return r.waitFor(ctx, *w.Target, w.Expr)
}

// sleep waits for d unless ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting %s: %w", d, context.Cause(ctx))
	}
}

// CompileWaitExpr compiles the expr of a wait action over `self`, the
// target object. The admission webhook compiles it the same way.
func CompileWaitExpr(expr string) (*cel.Expression, error) {
	return cel.NewExpression(expr, cel.WithCompile(), cel.WithStructVariables("self"))
}

// waitFor polls the target every pollInterval until expr, evaluated with
// self bound to the object, is true.
//
// A missing object, an unknown kind, a transient read error or a failed
// evaluation (CEL fails on a missing field) mean "not yet": the object may
// be created, its CRD installed or its status filled later. The last such reason is reported
// when the timeout ends the wait, so the user sees why it never held.
func (r *Runner) waitFor(ctx context.Context, ref stagesetv1.ObjectReference, expr string) error {
	e, err := CompileWaitExpr(expr)
	if err != nil {
		return fmt.Errorf("invalid expr: %w", err)
	}
	var notYet error
	err = wait.PollUntilContextCancel(ctx, pollInterval, true, func(ctx context.Context) (bool, error) {
		obj, err := r.object(ref)
		if err != nil {
			notYet = err
			return false, nil
		}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			if apierrors.IsNotFound(err) {
				notYet = fmt.Errorf("%s not found", utils.FmtUnstructured(obj))
				return false, nil
			}
			if readRefused(err) {
				return false, fmt.Errorf("reading %s: %w", utils.FmtUnstructured(obj), err)
			}
			// A read failing as the timeout nears (the client's rate limiter
			// refuses to wait past the deadline) must not hide the reason
			// the expression did not hold so far.
			if notYet == nil {
				notYet = fmt.Errorf("reading %s: %w", utils.FmtUnstructured(obj), err)
			}
			return false, nil
		}
		ok, err := e.EvaluateBoolean(ctx, map[string]any{"self": obj.Object})
		switch {
		case err != nil:
			notYet = err
		case !ok:
			notYet = fmt.Errorf("%s: %q is false", utils.FmtUnstructured(obj), expr)
		}
		return err == nil && ok, nil
	})
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if notYet != nil {
			return fmt.Errorf("timed out waiting: %w: %w", notYet, context.Cause(ctx))
		}
		return fmt.Errorf("timed out waiting for %q: %w", expr, context.Cause(ctx))
	}
	return err
}

// readRefused reports whether a read failed because the identity may not
// read the object: waiting will not fix that, so the action fails at once.
// Other failures (throttling, a flaky connection) are retried until the
// timeout.
func readRefused(err error) bool {
	return apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err)
}
