package v1

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate re-checks, in Go, the rules the CRD schema and its CEL rules
// enforce at admission, plus the ones CEL cannot see (a dependency on itself
// through an explicit namespace). The reconciler calls it so that a StageSet
// that slipped past admission still ends InvalidSpec instead of half-applying.
// All problems are reported at once.
func (in *StageSet) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	spec := &in.Spec
	positive := func(field string, d *metav1.Duration) {
		if d != nil && d.Duration <= 0 {
			add("%s must be greater than zero", field)
		}
	}
	if spec.Interval.Duration <= 0 {
		add("spec.interval must be greater than zero")
	}
	positive("spec.retryInterval", spec.RetryInterval)
	positive("spec.timeout", spec.Timeout)
	positive("spec.driftDetectionInterval", spec.DriftDetectionInterval)

	for _, dep := range spec.DependsOn {
		ns := dep.Namespace
		if ns == "" {
			ns = in.Namespace
		}
		if dep.Name == in.Name && ns == in.Namespace {
			add("spec.dependsOn: a StageSet cannot depend on itself")
		}
	}

	switch n := len(spec.Stages); {
	case n == 0:
		add("spec.stages must have at least one stage")
	case n > MaxStages:
		add("spec.stages must have at most %d stages, has %d", MaxStages, n)
	}
	seen := make(map[string]bool, len(spec.Stages))
	for i, stage := range spec.Stages {
		field := fmt.Sprintf("spec.stages[%d]", i)
		if !dns1123Label.MatchString(stage.Name) || len(stage.Name) > 63 {
			add("%s.name %q must be a DNS-1123 label", field, stage.Name)
		}
		if seen[stage.Name] {
			add("%s.name %q: stage names must be unique", field, stage.Name)
		}
		seen[stage.Name] = true
		if err := ValidateRelativePath(stage.GetPath()); err != nil {
			add("%s.path: %w", field, err)
		}
		if _, ok := in.GetStageSourceRef(stage); !ok {
			add("%s has no sourceRef and spec.sourceRef is not set", field)
		}
		positive(field+".timeout", stage.Timeout)
		if stage.Actions != nil {
			for group, actions := range map[string][]Action{
				"pre": stage.Actions.Pre, "post": stage.Actions.Post, "onFailure": stage.Actions.OnFailure,
			} {
				for j, action := range actions {
					if err := action.validate(); err != nil {
						add("%s.actions.%s[%d] %q: %w", field, group, j, action.Name, err)
					}
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (in Action) validate() error {
	verbs := 0
	for _, set := range []bool{in.Patch != nil, in.HTTP != nil, in.Job != nil, in.Wait != nil} {
		if set {
			verbs++
		}
	}
	if verbs != 1 {
		return errors.New("an action must set exactly one of patch, http, job or wait")
	}
	if in.Timeout != nil && in.Timeout.Duration <= 0 {
		return errors.New("timeout must be greater than zero")
	}
	if in.Job != nil {
		return ValidateRelativePath(in.Job.Path)
	}
	if w := in.Wait; w != nil {
		if (w.Duration != nil) == (w.Target != nil) || (w.Target != nil) != (w.Expr != "") {
			return errors.New("a wait action sets either duration, or target and expr")
		}
	}
	return nil
}

// ValidateRelativePath refuses absolute paths and paths with a ".." element:
// a stage may only read below the root of its artifact.
func ValidateRelativePath(p string) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q must be relative to the artifact root", p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return fmt.Errorf("path %q must not contain '..'", p)
		}
	}
	return nil
}
