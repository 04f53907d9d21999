package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/cel"
	"github.com/fluxcd/pkg/runtime/conditions"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// checkDependencies returns nil when every StageSet in spec.dependsOn is
// Ready at its observed generation (or its readyExpr holds), a waiting
// DependencyNotReady error when one is not yet, a terminal AccessDenied error
// for a dependency in another namespace under --no-cross-namespace-refs, and
// a terminal InvalidSpec error when the dependencies form a cycle or a
// readyExpr does not compile.
func (r *StageSetReconciler) checkDependencies(ctx context.Context, obj *stagesetv1.StageSet) error {
	if len(obj.Spec.DependsOn) == 0 {
		return nil
	}
	// Refused before anything is read: whether the other namespace's
	// StageSet exists, is Ready or matches a readyExpr is none of this
	// StageSet's business.
	if r.NoCrossNamespaceRefs {
		for _, ref := range obj.Spec.DependsOn {
			if key := dependencyKey(obj, ref); key.Namespace != obj.Namespace {
				return stalled(stagesetv1.AccessDeniedReason, fmt.Errorf(
					"cannot depend on StageSet '%s' from namespace %q: cross-namespace references are not allowed (--no-cross-namespace-refs)",
					key, obj.Namespace))
			}
		}
	}
	if cycle, err := r.findCycle(ctx, obj); err != nil {
		return err
	} else if cycle != "" {
		return stalled(stagesetv1.InvalidSpecReason, fmt.Errorf("dependency cycle: %s", cycle))
	}

	for _, ref := range obj.Spec.DependsOn {
		key := dependencyKey(obj, ref)
		dep := NewStageSet()
		if err := r.Get(ctx, key, dep); err != nil {
			if apierrors.IsNotFound(err) {
				return waiting(stagesetv1.DependencyNotReadyReason, fmt.Errorf("dependency '%s' not found", key))
			}
			return err
		}
		ready, err := dependencyReady(ctx, obj, dep, ref.ReadyExpr)
		if err != nil {
			return stalled(stagesetv1.InvalidSpecReason, fmt.Errorf("dependency '%s': %w", key, err))
		}
		if !ready {
			return waiting(stagesetv1.DependencyNotReadyReason, fmt.Errorf("dependency '%s' is not ready", key))
		}
	}
	return nil
}

func dependencyKey(obj *stagesetv1.StageSet, ref meta.DependencyReference) client.ObjectKey {
	ns := ref.Namespace
	if ns == "" {
		ns = obj.Namespace
	}
	return client.ObjectKey{Namespace: ns, Name: ref.Name}
}

// dependencyReady applies the built-in check (Ready at the observed
// generation) or, when set, the readyExpr over `self` (this StageSet) and
// `dep` (the dependency), as Flux Kustomizations do.
func dependencyReady(ctx context.Context, obj, dep *stagesetv1.StageSet, readyExpr string) (bool, error) {
	if readyExpr == "" {
		return conditions.IsReady(dep) && dep.Generation == dep.Status.ObservedGeneration, nil
	}
	expr, err := cel.NewExpression(readyExpr, cel.WithCompile(), cel.WithStructVariables("self", "dep"))
	if err != nil {
		return false, fmt.Errorf("invalid readyExpr: %w", err)
	}
	self, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return false, err
	}
	other, err := runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
	if err != nil {
		return false, err
	}
	ready, err := expr.EvaluateBoolean(ctx, map[string]any{"self": self, "dep": other})
	if err != nil {
		// A field the expression reads may not exist yet: keep waiting.
		return false, nil
	}
	return ready, nil
}

// findCycle walks the dependsOn graph from obj and returns the cycle through
// obj, as "a -> b -> a", or "" when there is none. StageSets that do not exist
// yet end a path.
func (r *StageSetReconciler) findCycle(ctx context.Context, obj *stagesetv1.StageSet) (string, error) {
	start := client.ObjectKeyFromObject(obj)
	visited := map[client.ObjectKey]bool{}
	var walk func(current *stagesetv1.StageSet, path []string) (string, error)
	walk = func(current *stagesetv1.StageSet, path []string) (string, error) {
		for _, ref := range current.Spec.DependsOn {
			key := dependencyKey(current, ref)
			// Under --no-cross-namespace-refs an edge leaving the namespace
			// is refused where it starts, so it closes no cycle.
			if r.NoCrossNamespaceRefs && key.Namespace != current.Namespace {
				continue
			}
			if key == start {
				return strings.Join(append(path, key.String()), " -> "), nil
			}
			if visited[key] {
				continue
			}
			visited[key] = true
			next := NewStageSet()
			if err := r.Get(ctx, key, next); err != nil {
				if apierrors.IsNotFound(err) {
					continue
				}
				return "", err
			}
			if cycle, err := walk(next, append(path, key.String())); cycle != "" || err != nil {
				return cycle, err
			}
		}
		return "", nil
	}
	return walk(obj, []string{start.String()})
}
