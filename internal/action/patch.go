package action

import (
	"context"
	"fmt"

	"github.com/fluxcd/pkg/ssa/utils"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// patchTypes maps the patch action types to the content types the API
// server understands.
//
// Strategic merge patches are sent as such even though the target is read
// as unstructured: the API server, not the client, applies the patch and
// knows the patch strategies of built-in kinds. For custom resources it has
// none and answers 415 Unsupported Media Type, which patch turns into a
// message pointing at merge or json6902.
var patchTypes = map[string]types.PatchType{
	"":          types.MergePatchType,
	"merge":     types.MergePatchType,
	"json6902":  types.JSONPatchType,
	"strategic": types.StrategicMergePatchType,
}

// patch applies a patch action to its target.
func (r *Runner) patch(ctx context.Context, p *stagesetv1.PatchAction) error {
	pt, ok := patchTypes[p.Type]
	if !ok {
		return fmt.Errorf("unknown patch type %q, expected merge, json6902 or strategic", p.Type)
	}
	// The patch is YAML or JSON; JSON is YAML, so one conversion serves both.
	body, err := yaml.YAMLToJSON([]byte(p.Patch))
	if err != nil {
		return fmt.Errorf("patch is neither valid YAML nor JSON: %w", err)
	}
	obj, err := r.object(p.Target)
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, obj, client.RawPatch(pt, body)); err != nil {
		if pt == types.StrategicMergePatchType && apierrors.IsUnsupportedMediaType(err) {
			return fmt.Errorf("patching %s: strategic merge patches work only on built-in kinds, use merge or json6902: %w", utils.FmtUnstructured(obj), err)
		}
		return fmt.Errorf("patching %s: %w", utils.FmtUnstructured(obj), err)
	}
	return nil
}
