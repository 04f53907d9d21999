package validation

import (
	"strings"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func stages(obj *stagesetv1.StageSet, path *field.Path, opts Options) field.ErrorList {
	var errs field.ErrorList
	switch n := len(obj.Spec.Stages); {
	case n == 0:
		errs = append(errs, field.Required(path, "at least one stage is required"))
	case n > stagesetv1.MaxStages:
		errs = append(errs, field.TooMany(path, n, stagesetv1.MaxStages))
	}
	seen := make(map[string]bool, len(obj.Spec.Stages))
	for i, stage := range obj.Spec.Stages {
		p := path.Index(i)
		errs = append(errs, dnsLabel(p.Child("name"), stage.Name)...)
		if seen[stage.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), stage.Name))
		}
		seen[stage.Name] = true
		errs = append(errs, relativePath(p.Child("path"), stage.GetPath())...)
		switch {
		case stage.SourceRef != nil:
			errs = append(errs, sourceRef(obj, p.Child("sourceRef"), *stage.SourceRef, opts)...)
		case obj.Spec.SourceRef == nil:
			errs = append(errs, field.Required(p.Child("sourceRef"), "required when spec.sourceRef is not set"))
		}
		if stage.TargetNamespace != "" {
			errs = append(errs, dnsLabel(p.Child("targetNamespace"), stage.TargetNamespace)...)
		}
		errs = append(errs, positive(p.Child("timeout"), stage.Timeout)...)
		for j, hc := range stage.HealthChecks {
			if hc.Namespace != "" {
				errs = append(errs, dnsLabel(p.Child("healthChecks").Index(j).Child("namespace"), hc.Namespace)...)
			}
		}
		errs = append(errs, healthCheckExprs(p.Child("healthCheckExprs"), stage.HealthCheckExprs)...)
		if stage.Actions != nil {
			errs = append(errs, actionGroup(p.Child("actions", "pre"), stage.Actions.Pre)...)
			errs = append(errs, actionGroup(p.Child("actions", "post"), stage.Actions.Post)...)
			errs = append(errs, actionGroup(p.Child("actions", "onFailure"), stage.Actions.OnFailure)...)
		}
	}
	return errs
}

// healthCheckExprs checks what cel.NewStatusReader needs to build the
// stage's health checks (internal/apply): a current expression, every
// expression parsing (parsed, not compiled against a schema, since custom
// resources need not have the usual top-level fields), and at most one check
// per group and kind.
func healthCheckExprs(path *field.Path, checks []kustomize.CustomHealthCheck) field.ErrorList {
	var errs field.ErrorList
	seen := map[schema.GroupKind]bool{}
	for i, hc := range checks {
		p := path.Index(i)
		gv, err := schema.ParseGroupVersion(hc.APIVersion)
		switch {
		case hc.APIVersion == "":
			errs = append(errs, field.Required(p.Child("apiVersion"), ""))
		case err != nil:
			errs = append(errs, field.Invalid(p.Child("apiVersion"), hc.APIVersion, err.Error()))
		}
		// The key cel.NewStatusReader uses: a check without kind covers
		// the whole group.
		gk := gv.WithKind(hc.Kind).GroupKind()
		if seen[gk] {
			errs = append(errs, field.Duplicate(p, gk.String()))
		}
		seen[gk] = true
		if hc.Current == "" {
			errs = append(errs, field.Required(p.Child("current"), ""))
		}
		for _, e := range []struct{ name, expr string }{
			{"current", hc.Current}, {"inProgress", hc.InProgress}, {"failed", hc.Failed},
		} {
			if e.expr == "" {
				continue
			}
			if _, err := cel.NewExpression(e.expr); err != nil {
				errs = append(errs, field.Invalid(p.Child(e.name), e.expr, err.Error()))
			}
		}
	}
	return errs
}

// actionGroup checks the actions of one group. Names are unique in a group:
// they key the Jobs of job actions and the once-per-revision bookkeeping.
func actionGroup(path *field.Path, actions []stagesetv1.Action) field.ErrorList {
	var errs field.ErrorList
	seen := map[string]bool{}
	for i, a := range actions {
		p := path.Index(i)
		errs = append(errs, dnsLabel(p.Child("name"), a.Name)...)
		if seen[a.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), a.Name))
		}
		seen[a.Name] = true
		errs = append(errs, actionShape(p, a)...)
	}
	return errs
}

// actionShape checks the shape of one action: exactly one verb, and what that
// verb needs to run (internal/action).
func actionShape(path *field.Path, a stagesetv1.Action) field.ErrorList {
	var errs field.ErrorList
	var verbs []string
	for _, v := range []struct {
		verb string
		set  bool
	}{{"patch", a.Patch != nil}, {"http", a.HTTP != nil}, {"job", a.Job != nil}, {"wait", a.Wait != nil}} {
		if v.set {
			verbs = append(verbs, v.verb)
		}
	}
	switch len(verbs) {
	case 0:
		errs = append(errs, field.Required(path, "an action must set exactly one of patch, http, job or wait"))
	case 1:
	default:
		errs = append(errs, field.Forbidden(path, "an action must set exactly one of patch, http, job or wait, not "+strings.Join(verbs, " and ")))
	}
	errs = append(errs, positive(path.Child("timeout"), a.Timeout)...)
	if a.Patch != nil {
		errs = append(errs, patchAction(path.Child("patch"), a.Patch)...)
	}
	if a.HTTP != nil {
		errs = append(errs, httpAction(path.Child("http"), a.HTTP)...)
	}
	if a.Job != nil {
		p := path.Child("job", "path")
		if a.Job.Path == "" {
			errs = append(errs, field.Required(p, ""))
		}
		errs = append(errs, relativePath(p, a.Job.Path)...)
	}
	if a.Wait != nil {
		errs = append(errs, waitAction(path.Child("wait"), a.Wait)...)
	}
	return errs
}

// relativePath refuses absolute paths and paths with a ".." element: a stage
// may only read below the root of its artifact.
func relativePath(path *field.Path, p string) field.ErrorList {
	if strings.HasPrefix(p, "/") {
		return field.ErrorList{field.Invalid(path, p, "must be relative to the artifact root")}
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return field.ErrorList{field.Invalid(path, p, "must not contain '..'")}
		}
	}
	return nil
}
