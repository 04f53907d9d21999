// Package webhook serves the admission webhook for StageSets (SPEC §10): it
// refuses at create and update time what the reconciler would otherwise
// only find at run time, with every problem and its field path in one
// answer. The rules are internal/validation's, the same ones the reconciler
// re-checks; the serving certificates are internal/webhook/certs'.
//
// Only a validating webhook is served. Defaulting is the CRD's: its
// structural defaults (path "./", prune and wait true, deletionPolicy,
// drift detection mode, time zone UTC, patch type, HTTP method, source API
// version) are applied by the API server before any admission webhook runs,
// and the rest (timeouts, retry interval) are the getters of the API types,
// so that a StageSet stored while the webhook was down means the same. A
// mutating webhook would add a failure point and nothing to default.
package webhook

import (
	"context"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/validation"
)

// ValidatePath is the path the StageSet webhook is served on, named the
// way controller-runtime names it for the stageset.io/v1 group: the
// clientConfig.service.path of the ValidatingWebhookConfiguration.
const ValidatePath = "/validate-stageset-io-v1-stageset"

// Setup registers the StageSet validating webhook on the manager's webhook
// server; the manager serves it on its webhook port once started.
func Setup(mgr ctrl.Manager, opts validation.Options) error {
	return ctrl.NewWebhookManagedBy(mgr, &stagesetv1.StageSet{}).
		WithValidator(&Validator{Options: opts}).
		WithValidatorCustomPath(ValidatePath).
		RecoverPanic(true).
		Complete()
}

// Validator refuses StageSets that internal/validation refuses.
type Validator struct {
	// Options are the controller's flags that the rules depend on.
	Options validation.Options
}

var _ admission.Validator[*stagesetv1.StageSet] = &Validator{}

// ValidateCreate refuses an invalid StageSet.
func (v *Validator) ValidateCreate(_ context.Context, obj *stagesetv1.StageSet) (admission.Warnings, error) {
	return nil, v.validate(obj)
}

// ValidateUpdate refuses an update that leaves the spec invalid. An update
// that does not change the spec is let through even when the spec is
// invalid (stored while the webhook was down, or before a flag such as
// --no-cross-namespace-refs was turned on): the controller must still be
// able to add and remove its finalizer, users to annotate, label and
// delete; the reconciler reports such a StageSet InvalidSpec. Suspending
// or resuming it is let through too, for the same reason: flux-style
// tooling suspends before it fixes.
func (v *Validator) ValidateUpdate(_ context.Context, oldObj, newObj *stagesetv1.StageSet) (admission.Warnings, error) {
	unsuspended := newObj.Spec
	unsuspended.Suspend = oldObj.Spec.Suspend
	if apiequality.Semantic.DeepEqual(oldObj.Spec, unsuspended) {
		return nil, nil
	}
	return nil, v.validate(newObj)
}

// ValidateDelete lets every deletion through: deleting a StageSet never
// needs its spec to be valid.
func (v *Validator) ValidateDelete(context.Context, *stagesetv1.StageSet) (admission.Warnings, error) {
	return nil, nil
}

// validate returns an Invalid status error listing every problem as a
// cause with its field path, as the API server's own validation does.
func (v *Validator) validate(obj *stagesetv1.StageSet) error {
	errs := validation.StageSet(obj, v.Options)
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(stagesetv1.GroupVersion.WithKind(stagesetv1.StageSetKind).GroupKind(), obj.Name, errs)
}
