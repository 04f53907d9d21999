package apply

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa/utils"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
)

// Prunable returns the objects among objects that Delete would delete now,
// in their order: those still live, labelled as owner's and not annotated
// stageset.io/prune: disabled. Objects already gone, or of a kind the
// cluster no longer serves, are not listed. Nothing is written: it is the
// preview of a prune (stagesetctl diff).
func (m *Manager) Prunable(ctx context.Context, owner Owner, objects []*unstructured.Unstructured) ([]*unstructured.Unstructured, error) {
	opts := deleteOptions(owner)
	sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: opts.Inclusions})
	if err != nil {
		return nil, err
	}
	var prunable []*unstructured.Unstructured
	for _, obj := range objects {
		live, err := m.live(ctx, obj)
		switch {
		case err != nil:
			return nil, fmt.Errorf("%s query failed: %w", utils.FmtUnstructured(obj), err)
		case live == nil:
			continue
		}
		if !sel.Matches(labels.Set(live.GetLabels())) || utils.AnyInMetadata(live, opts.Exclusions) {
			continue
		}
		prunable = append(prunable, obj)
	}
	return prunable, nil
}
