package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/dependency"
)

// checkDependencies returns nil when every StageSet in spec.dependsOn is
// Ready at its observed generation (or its readyExpr holds), a waiting
// DependencyNotReady error when one is not yet, and a terminal InvalidSpec
// error when the dependencies form a cycle or a readyExpr does not compile.
// A dependency in another namespace under --no-cross-namespace-refs never
// gets here: validation refuses it (AccessDenied) before anything is read.
func (r *StageSetReconciler) checkDependencies(ctx context.Context, obj *stagesetv1.StageSet) error {
	if len(obj.Spec.DependsOn) == 0 {
		return nil
	}
	if cycle, err := dependency.FindCycle(ctx, obj, r.getStageSet, r.NoCrossNamespaceRefs); err != nil {
		return err
	} else if cycle != "" {
		return stalled(stagesetv1.InvalidSpecReason, fmt.Errorf("dependency cycle: %s", cycle))
	}

	for _, ref := range obj.Spec.DependsOn {
		key := dependency.Key(obj, ref)
		dep, err := r.getStageSet(ctx, key)
		if err != nil {
			return err
		}
		if dep == nil {
			return waiting(stagesetv1.DependencyNotReadyReason, fmt.Errorf("dependency '%s' not found", key))
		}
		ready, err := dependency.Ready(ctx, obj, dep, ref.ReadyExpr)
		if err != nil {
			return stalled(stagesetv1.InvalidSpecReason, fmt.Errorf("dependency '%s': %w", key, err))
		}
		if !ready {
			return waiting(stagesetv1.DependencyNotReadyReason, fmt.Errorf("dependency '%s' is not ready", key))
		}
	}
	return nil
}

// getStageSet reads a StageSet for the dependency graph: nil when it does
// not exist.
func (r *StageSetReconciler) getStageSet(ctx context.Context, key client.ObjectKey) (*stagesetv1.StageSet, error) {
	obj := NewStageSet()
	if err := r.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return obj, nil
}
