package apply

import (
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa/jsondiff"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// How driftDetection.ignore rules behave (ssa v0.83.0 DriftIgnoreRules, in
// Apply, ApplyAll and Diff alike):
//
//   - Comparison: the ignored paths are removed from copies of the live object
//     and of the server-side dry-run result before they are compared, so an
//     object whose only differences are ignored fields is unchanged and is
//     not written (no resourceVersion bump).
//   - Re-assertion: when such an object is written anyway, because another
//     field drifted, each ignored path whose live value differs from the
//     manifest is either removed from the payload, when another Apply field
//     manager owns it (that manager keeps it), or set to the live value,
//     when no other Apply manager does (the controller adopts the value).
//     The field is never released by a manager that is its only owner: the
//     API server would then remove it or reset it to its default (a
//     Deployment's /spec/replicas would fall back to 1). Either way the live
//     value survives, so nothing of our own is needed on top of ssa.
//   - Creation: a missing object is created from the whole manifest; the
//     rules only concern objects that exist.
//
// One exception reports configured although only ignored fields differ:
// when a kubectl-* Update manager (kubectl edit, patch, ...) changed the
// field, ssa's field manager cleanup (see ssaApplyOptions) takes its entries
// over, which is a write; the live value is adopted and stays.
//
// Targets: ssa compiles Group, Version, Kind, Name and Namespace as regular
// expressions anchored at both ends (^(?:expr)$). They are passed through
// unchanged: "Deployment" selects exactly that kind, "web-.*" every name
// with that prefix, as in Flux targets. LabelSelector and AnnotationSelector
// are label selector expressions. A target is matched against the object as
// applied, owner labels included.

// driftIgnoreRules maps driftDetection.ignore onto ssa. Every path must be a
// JSON pointer to a field (RFC 6901, starting with "/"); the whole object
// ("") cannot be ignored. Selectors are compiled here, so that a bad regular
// expression is reported with the index of its rule before anything is sent.
func driftIgnoreRules(rules []stagesetv1.IgnoreRule) ([]jsondiff.IgnoreRule, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	out := make([]jsondiff.IgnoreRule, 0, len(rules))
	for i, rule := range rules {
		if len(rule.Paths) == 0 {
			return nil, fmt.Errorf("driftDetection.ignore[%d]: no paths", i)
		}
		for _, p := range rule.Paths {
			if !strings.HasPrefix(p, "/") {
				return nil, fmt.Errorf("driftDetection.ignore[%d]: path %q is not a JSON pointer to a field (such as /spec/replicas)", i, p)
			}
		}
		// A rule without target gets an empty selector, which matches every
		// object, rather than nil: ssa keys compiled rules by selector
		// pointer, and two nil selectors would share a key, so the paths of
		// one rule would replace the other's.
		selector := &jsondiff.Selector{}
		if t := rule.Target; t != nil {
			selector = &jsondiff.Selector{
				Group:              t.Group,
				Version:            t.Version,
				Kind:               t.Kind,
				Name:               t.Name,
				Namespace:          t.Namespace,
				LabelSelector:      t.LabelSelector,
				AnnotationSelector: t.AnnotationSelector,
			}
		}
		if _, err := jsondiff.NewSelectorRegex(selector); err != nil {
			return nil, fmt.Errorf("driftDetection.ignore[%d].target: %w", i, err)
		}
		out = append(out, jsondiff.IgnoreRule{
			Paths:    append([]string(nil), rule.Paths...),
			Selector: selector,
		})
	}
	return out, nil
}
