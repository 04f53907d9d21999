package validation

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/action"
)

// patchAction checks a patch action: a target, a known type, and a patch
// document of the shape its type needs (a list of operations for json6902,
// an object for merge and strategic), which the runner would otherwise only
// find out when the API server refuses it.
func patchAction(path *field.Path, p *stagesetv1.PatchAction) field.ErrorList {
	errs := objectRef(path.Child("target"), p.Target)
	types := []string{"merge", "json6902", "strategic"}
	if p.Type != "" && !slices.Contains(types, p.Type) {
		errs = append(errs, field.NotSupported(path.Child("type"), p.Type, types))
	}
	if p.Patch == "" {
		return append(errs, field.Required(path.Child("patch"), ""))
	}
	body, err := yaml.YAMLToJSON([]byte(p.Patch))
	if err != nil {
		return append(errs, field.Invalid(path.Child("patch"), p.Patch, "neither valid YAML nor JSON: "+err.Error()))
	}
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		return append(errs, field.Invalid(path.Child("patch"), p.Patch, err.Error()))
	}
	switch _, isList := doc.([]any); {
	case p.Type == "json6902" && !isList:
		errs = append(errs, field.Invalid(path.Child("patch"), p.Patch, "a json6902 patch is a list of operations"))
	case p.Type != "json6902":
		if _, isObject := doc.(map[string]any); !isObject {
			errs = append(errs, field.Invalid(path.Child("patch"), p.Patch, "a merge or strategic patch is an object"))
		}
	}
	return errs
}

// httpAction checks an http action. The URL is never echoed back: its query
// may carry a token, and the message ends up in the StageSet's status. The
// --allowed-action-hosts policy is the runner's, checked when it dials.
func httpAction(path *field.Path, h *stagesetv1.HTTPAction) field.ErrorList {
	var errs field.ErrorList
	p := path.Child("url")
	if h.URL == "" {
		errs = append(errs, field.Required(p, ""))
	} else if u, err := url.Parse(h.URL); err != nil {
		errs = append(errs, field.Invalid(p, field.OmitValueType{}, "not a URL"))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, field.Invalid(p, field.OmitValueType{}, "must be an absolute http or https URL with a host"))
	}
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	if h.Method != "" && !slices.Contains(methods, h.Method) {
		errs = append(errs, field.NotSupported(path.Child("method"), h.Method, methods))
	}
	if h.HeadersFrom != nil {
		errs = append(errs, dnsSubdomain(path.Child("headersFrom", "name"), h.HeadersFrom.Name)...)
	}
	for i, code := range h.ExpectedStatus {
		if code < 100 || code > 599 {
			errs = append(errs, field.Invalid(path.Child("expectedStatus").Index(i), code, "must be an HTTP status code (100-599)"))
		}
	}
	return errs
}

// waitAction checks a wait action: either a duration greater than zero, or
// a target and an expression that compiles the way the runner compiles it.
func waitAction(path *field.Path, w *stagesetv1.WaitAction) field.ErrorList {
	var errs field.ErrorList
	if (w.Duration != nil) == (w.Target != nil) {
		errs = append(errs, field.Invalid(path, "", "a wait action sets either duration, or target and expr"))
	}
	if (w.Target != nil) != (w.Expr != "") {
		errs = append(errs, field.Invalid(path, "", "a wait action with a target needs an expr, and an expr needs a target"))
	}
	errs = append(errs, positive(path.Child("duration"), w.Duration)...)
	if w.Target != nil {
		errs = append(errs, objectRef(path.Child("target"), *w.Target)...)
	}
	if w.Expr != "" {
		if _, err := action.CompileWaitExpr(w.Expr); err != nil {
			errs = append(errs, field.Invalid(path.Child("expr"), w.Expr, err.Error()))
		}
	}
	return errs
}

// objectRef checks the target of an action. Names are only required, not
// checked further: some kinds (RBAC) allow names no DNS rule does.
func objectRef(path *field.Path, ref stagesetv1.ObjectReference) field.ErrorList {
	var errs field.ErrorList
	if ref.APIVersion == "" {
		errs = append(errs, field.Required(path.Child("apiVersion"), ""))
	} else if _, err := schema.ParseGroupVersion(ref.APIVersion); err != nil {
		errs = append(errs, field.Invalid(path.Child("apiVersion"), ref.APIVersion, err.Error()))
	}
	if ref.Kind == "" {
		errs = append(errs, field.Required(path.Child("kind"), ""))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	}
	if ref.Namespace != "" {
		errs = append(errs, dnsLabel(path.Child("namespace"), ref.Namespace)...)
	}
	return errs
}
