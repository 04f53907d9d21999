package build

import (
	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// StageInput returns the build input of a stage of obj with the variables
// LoadVariables returned for it; Root is left for the caller to set. The
// controller and stagesetctl build both go through it, so the CLI renders a
// stage from exactly the inputs the controller would.
func StageInput(obj *stagesetv1.StageSet, stage stagesetv1.Stage, vars map[string]string) Input {
	return Input{
		Path:            stage.GetPath(),
		TargetNamespace: obj.GetStageTargetNamespace(stage),
		Patches:         stage.Patches,
		Substitute:      vars,
	}
}
