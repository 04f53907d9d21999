package testenv

import (
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// ReadyReason reads a StageSet's Ready condition as "<status>/<reason>"
// once the controller observed its generation: "not observed" before, and
// "no Ready condition" without one.
func ReadyReason(obj *stagesetv1.StageSet) string {
	if obj.Status.ObservedGeneration != obj.Generation {
		return "not observed"
	}
	c := conditions.Get(obj, meta.ReadyCondition)
	if c == nil {
		return "no Ready condition"
	}
	return string(c.Status) + "/" + c.Reason
}
