// Package validation holds the one set of rules a StageSet spec must pass
// (SPEC §3.1, §10): the admission webhook refuses a StageSet that breaks
// them, and the reconciler re-checks them so that a StageSet created while
// the webhook was down ends InvalidSpec (or AccessDenied) and Stalled
// instead of half-applying.
//
// The rules cover what the CRD schema states, re-checked in Go, and what it
// cannot state: cron syntax and time zones of update windows, CEL
// expressions that must compile the way the controller compiles them,
// action shapes, cross-namespace references under --no-cross-namespace-refs
// and the names the controller derives from user input. Every problem is
// returned at once, each with its field path.
package validation

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apivalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/dependency"
	"github.com/stageset/stageset-controller/internal/window"
)

// Options are the controller flags that change what a StageSet may say.
type Options struct {
	// NoCrossNamespaceRefs refuses references to sources and StageSets in
	// another namespace (--no-cross-namespace-refs).
	NoCrossNamespaceRefs bool
}

// crossNamespaceDetail is the detail of every refused cross-namespace
// reference: Reason recognises those errors by it.
const crossNamespaceDetail = "cross-namespace references are not allowed (--no-cross-namespace-refs)"

// StageSet returns every problem of obj's spec, each with its field path; an
// empty list means the StageSet is valid.
func StageSet(obj *stagesetv1.StageSet, opts Options) field.ErrorList {
	spec := &obj.Spec
	path := field.NewPath("spec")
	var errs field.ErrorList

	if spec.Interval.Duration <= 0 {
		errs = append(errs, field.Invalid(path.Child("interval"), spec.Interval.Duration.String(), "must be greater than zero"))
	}
	errs = append(errs, positive(path.Child("retryInterval"), spec.RetryInterval)...)
	errs = append(errs, positive(path.Child("timeout"), spec.Timeout)...)
	errs = append(errs, positive(path.Child("driftDetectionInterval"), spec.DriftDetectionInterval)...)

	if policies := []string{stagesetv1.DeletionPolicyMirrorPrune, stagesetv1.DeletionPolicyDelete, stagesetv1.DeletionPolicyOrphan}; spec.DeletionPolicy != "" && !slices.Contains(policies, spec.DeletionPolicy) {
		errs = append(errs, field.NotSupported(path.Child("deletionPolicy"), spec.DeletionPolicy, policies))
	}
	if modes := []string{stagesetv1.DriftDetectionEnabled, stagesetv1.DriftDetectionWarn, stagesetv1.DriftDetectionDisabled}; spec.DriftDetection != nil && spec.DriftDetection.Mode != "" && !slices.Contains(modes, spec.DriftDetection.Mode) {
		errs = append(errs, field.NotSupported(path.Child("driftDetection", "mode"), spec.DriftDetection.Mode, modes))
	}
	if spec.ServiceAccountName != "" {
		errs = append(errs, dnsSubdomain(path.Child("serviceAccountName"), spec.ServiceAccountName)...)
	}
	if spec.TargetNamespace != "" {
		errs = append(errs, dnsLabel(path.Child("targetNamespace"), spec.TargetNamespace)...)
	}
	if spec.SourceRef != nil {
		errs = append(errs, sourceRef(obj, path.Child("sourceRef"), *spec.SourceRef, opts)...)
	}
	if spec.KubeConfig != nil && spec.KubeConfig.SecretRef == nil {
		// Flux's configMapRef gets credentials from a cloud provider's
		// workload identity, which this controller does not implement:
		// refused here rather than failing every run.
		errs = append(errs, field.Required(path.Child("kubeConfig", "secretRef"), "only secretRef is supported (not configMapRef)"))
	}
	errs = append(errs, dependencies(obj, path.Child("dependsOn"), opts)...)
	for i, uw := range spec.UpdateWindows {
		errs = append(errs, window.Validate(uw, path.Child("updateWindows").Index(i))...)
	}
	errs = append(errs, stages(obj, path.Child("stages"), opts)...)
	return errs
}

// Reason returns the Ready reason the reconciler reports for a non-empty
// list: AccessDenied when every problem is a refused cross-namespace
// reference (the spec is fine, the controller's policy refuses it), else
// InvalidSpec.
func Reason(errs field.ErrorList) string {
	for _, err := range errs {
		if !IsCrossNamespace(err) {
			return stagesetv1.InvalidSpecReason
		}
	}
	return stagesetv1.AccessDeniedReason
}

// IsCrossNamespace tells whether err refuses a cross-namespace reference
// under --no-cross-namespace-refs.
func IsCrossNamespace(err *field.Error) bool {
	return err.Type == field.ErrorTypeForbidden && strings.HasSuffix(err.Detail, crossNamespaceDetail)
}

// crossNamespace refuses a reference to kind namespace/name, naming it: the
// message tells which reference to move.
func crossNamespace(path *field.Path, kind, namespace, name string) *field.Error {
	return field.Forbidden(path, fmt.Sprintf("%s '%s/%s' is in another namespace: %s", kind, namespace, name, crossNamespaceDetail))
}

func dependencies(obj *stagesetv1.StageSet, path *field.Path, opts Options) field.ErrorList {
	var errs field.ErrorList
	for i, dep := range obj.Spec.DependsOn {
		p := path.Index(i)
		errs = append(errs, dnsSubdomain(p.Child("name"), dep.Name)...)
		ns := dep.Namespace
		if ns == "" {
			ns = obj.Namespace
		} else {
			errs = append(errs, dnsLabel(p.Child("namespace"), dep.Namespace)...)
		}
		if dep.Name == obj.Name && ns == obj.Namespace {
			errs = append(errs, field.Invalid(p, dep.String(), "a StageSet cannot depend on itself"))
		}
		if opts.NoCrossNamespaceRefs && ns != obj.Namespace {
			errs = append(errs, crossNamespace(p.Child("namespace"), stagesetv1.StageSetKind, ns, dep.Name))
		}
		if dep.ReadyExpr != "" {
			if _, err := dependency.CompileReadyExpr(dep.ReadyExpr); err != nil {
				errs = append(errs, field.Invalid(p.Child("readyExpr"), dep.ReadyExpr, err.Error()))
			}
		}
	}
	return errs
}

// sourceRef checks a spec or stage sourceRef. The API version and kind are
// the ones source.Resolver knows; anything else would wait forever on a
// source it cannot read.
func sourceRef(obj *stagesetv1.StageSet, path *field.Path, ref stagesetv1.SourceReference, opts Options) field.ErrorList {
	var errs field.ErrorList
	if ref.APIVersion != "" && ref.APIVersion != stagesetv1.SourceAPIVersion {
		errs = append(errs, field.NotSupported(path.Child("apiVersion"), ref.APIVersion, []string{stagesetv1.SourceAPIVersion}))
	}
	kinds := []string{stagesetv1.GitRepositoryKind, stagesetv1.OCIRepositoryKind, stagesetv1.BucketKind, stagesetv1.ExternalArtifactKind}
	if !slices.Contains(kinds, ref.Kind) {
		errs = append(errs, field.NotSupported(path.Child("kind"), ref.Kind, kinds))
	}
	errs = append(errs, dnsSubdomain(path.Child("name"), ref.Name)...)
	if ref.Namespace != "" {
		errs = append(errs, dnsLabel(path.Child("namespace"), ref.Namespace)...)
		if opts.NoCrossNamespaceRefs && ref.Namespace != obj.Namespace {
			errs = append(errs, crossNamespace(path.Child("namespace"), ref.Kind, ref.Namespace, ref.Name))
		}
	}
	return errs
}

// positive refuses a set duration that is not greater than zero.
func positive(path *field.Path, d *metav1.Duration) field.ErrorList {
	if d != nil && d.Duration <= 0 {
		return field.ErrorList{field.Invalid(path, d.Duration.String(), "must be greater than zero")}
	}
	return nil
}

// dnsLabel refuses a value that is not a DNS-1123 label: namespaces, stage
// and action names, which end up as namespaces, label values and parts of
// Job names, all limited to 63 characters.
func dnsLabel(path *field.Path, value string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range apivalidation.IsDNS1123Label(value) {
		errs = append(errs, field.Invalid(path, value, msg))
	}
	return errs
}

// dnsSubdomain refuses a value that no object could be named: a reference
// to it would wait forever on an object that cannot exist.
func dnsSubdomain(path *field.Path, value string) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range apivalidation.IsDNS1123Subdomain(value) {
		errs = append(errs, field.Invalid(path, value, msg))
	}
	return errs
}
