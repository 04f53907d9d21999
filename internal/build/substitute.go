package build

import (
	"context"

	fluxkustomize "github.com/fluxcd/pkg/kustomize"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/resource"
)

// substitute replaces ${var} references in res with the given variables,
// through fluxcd/pkg/kustomize so the syntax and edge cases are Flux's:
// ${var:=default} and ${var:-default}, undefined variables become empty
// (Flux's default, non-strict mode), variable names must match
// ^[_[:alpha:]][_[:alpha:][:digit:]]*$, and an object labelled or annotated
// kustomize.toolkit.fluxcd.io/substitute: disabled is left untouched.
//
// The variables are already resolved (LoadVariables), so the call runs in
// dry-run mode, which never reads the cluster, with the variables handed
// over as an inline postBuild.substitute. Substitution always runs, even
// with no variables, so that defaults apply.
func substitute(res *resource.Resource, vars map[string]string) (*resource.Resource, error) {
	inline := make(map[string]any, len(vars))
	for k, v := range vars {
		inline[k] = v
	}
	ks := unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{"postBuild": map[string]any{"substitute": inline}},
	}}
	out, err := fluxkustomize.SubstituteVariables(context.Background(), nil, ks, res,
		fluxkustomize.SubstituteWithDryRun(true),
		fluxkustomize.SubstituteWithAlways(true),
	)
	if err != nil {
		return nil, err
	}
	if out == nil {
		// Substitution is disabled on this object.
		return res, nil
	}
	return out, nil
}
