// Package dependency judges the dependsOn edges of StageSets: whether a
// dependency is ready (the built-in check or a CEL readyExpr, as Flux
// Kustomizations do) and whether the edges close a cycle.
package dependency

import (
	"context"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/cel"
	"github.com/fluxcd/pkg/runtime/conditions"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Key is the StageSet a dependsOn reference of obj names: a reference
// without a namespace is to obj's own.
func Key(obj *stagesetv1.StageSet, ref meta.DependencyReference) client.ObjectKey {
	ns := ref.Namespace
	if ns == "" {
		ns = obj.Namespace
	}
	return client.ObjectKey{Namespace: ns, Name: ref.Name}
}

// CompileReadyExpr compiles a readyExpr over `self` (the dependent StageSet)
// and `dep` (the dependency).
func CompileReadyExpr(readyExpr string) (*cel.Expression, error) {
	expr, err := cel.NewExpression(readyExpr, cel.WithCompile(), cel.WithStructVariables("self", "dep"))
	if err != nil {
		return nil, fmt.Errorf("invalid readyExpr: %w", err)
	}
	return expr, nil
}

// Ready applies the built-in check (Ready at the observed generation) or,
// when set, the readyExpr. An expression that does not compile is an error;
// one that fails to evaluate (a field it reads does not exist yet) is not
// ready.
func Ready(ctx context.Context, self, dep *stagesetv1.StageSet, readyExpr string) (bool, error) {
	if readyExpr == "" {
		return conditions.IsReady(dep) && dep.Generation == dep.Status.ObservedGeneration, nil
	}
	expr, err := CompileReadyExpr(readyExpr)
	if err != nil {
		return false, err
	}
	selfData, err := runtime.DefaultUnstructuredConverter.ToUnstructured(self)
	if err != nil {
		return false, err
	}
	depData, err := runtime.DefaultUnstructuredConverter.ToUnstructured(dep)
	if err != nil {
		return false, err
	}
	ready, err := expr.EvaluateBoolean(ctx, map[string]any{"self": selfData, "dep": depData})
	if err != nil {
		return false, nil
	}
	return ready, nil
}

// Getter reads a StageSet of the graph: nil and no error when it does not
// exist.
type Getter func(ctx context.Context, key client.ObjectKey) (*stagesetv1.StageSet, error)

// FindCycle walks the dependsOn graph from start and returns the cycle
// through it, as "a -> b -> a", or "" when there is none. StageSets that do
// not exist end a path. With sameNamespaceOnly (--no-cross-namespace-refs)
// an edge leaving its namespace is refused where it starts, so it closes no
// cycle.
func FindCycle(ctx context.Context, start *stagesetv1.StageSet, get Getter, sameNamespaceOnly bool) (string, error) {
	origin := client.ObjectKeyFromObject(start)
	visited := map[client.ObjectKey]bool{}
	var walk func(current *stagesetv1.StageSet, path []string) (string, error)
	walk = func(current *stagesetv1.StageSet, path []string) (string, error) {
		for _, ref := range current.Spec.DependsOn {
			key := Key(current, ref)
			if sameNamespaceOnly && key.Namespace != current.Namespace {
				continue
			}
			if key == origin {
				return strings.Join(append(path, key.String()), " -> "), nil
			}
			if visited[key] {
				continue
			}
			visited[key] = true
			next, err := get(ctx, key)
			if err != nil {
				return "", err
			}
			if next == nil {
				continue
			}
			if cycle, err := walk(next, append(path, key.String())); cycle != "" || err != nil {
				return cycle, err
			}
		}
		return "", nil
	}
	return walk(start, []string{origin.String()})
}
