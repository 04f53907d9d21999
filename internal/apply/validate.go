package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/fluxcd/pkg/ssa"
	ssaerrors "github.com/fluxcd/pkg/ssa/errors"
	"github.com/fluxcd/pkg/ssa/utils"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Why a validation pass of our own: ssa ApplyAll dry-runs all the objects it
// is given before writing any, but ApplyAllStaged calls it once per group
// (CRDs/ClusterRoles/Namespaces, then *Class kinds, then the rest) and writes
// each group before dry-running the next. A bad ConfigMap would be found only
// after the stage's Namespaces were created. So every object is dry-run here
// first, and the stage is refused as a whole when any object is bad.
//
// Two kinds of objects cannot be dry-run before their stage writes anything,
// and are let through:
//   - objects of a kind defined by a CRD of the same stage: the cluster may
//     not serve the kind yet, or serve the schema the stage is replacing; ssa
//     dry-runs them once the CRD is established, before writing them;
//   - objects in a namespace that the same stage creates.
//
// A bad object of these two sorts still fails the stage, but only after the
// stage's CRDs and Namespaces were applied. Any other unknown kind (no REST
// mapping, no CRD in the stage) is refused up front.

// stageDefinitions are what a stage defines for its own objects.
type stageDefinitions struct {
	kinds      map[schema.GroupKind]bool // defined by a CRD of the stage
	namespaces map[string]bool           // Namespaces of the stage
}

func definitionsOf(objects []*unstructured.Unstructured) stageDefinitions {
	d := stageDefinitions{kinds: map[schema.GroupKind]bool{}, namespaces: map[string]bool{}}
	for _, obj := range objects {
		switch {
		case utils.IsCRD(obj):
			group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
			d.kinds[schema.GroupKind{Group: group, Kind: kind}] = true
		case utils.IsNamespace(obj):
			d.namespaces[obj.GetName()] = true
		}
	}
	return d
}

// validate dry-runs every object of the stage and returns what it learnt,
// or one error naming every object that the API server refused.
func (m *Manager) validate(ctx context.Context, objects []*unstructured.Unstructured, opts ssa.ApplyOptions) (*Validation, error) {
	defs := definitionsOf(objects)
	checked := newValidation()
	errs := make([]error, len(objects))
	var g errgroup.Group
	g.SetLimit(concurrency)
	for i, obj := range objects {
		g.Go(func() error {
			errs[i] = m.validateObject(ctx, obj, defs, opts, checked)
			return nil
		})
	}
	_ = g.Wait()
	if err := joinErrors(errs); err != nil {
		return nil, fmt.Errorf("dry-run failed, nothing applied: %w", err)
	}
	checked.pass(objects)
	return checked, nil
}

// validateObject checks one object the way ssa ApplyAll will treat it: skipped
// objects are not checked, and an immutable-field error is acceptable when the
// object will be force-recreated, provided it is valid as a new object.
//
// The dry-run comes first and, when it passes, is all: its answer tells
// whether the object exists (see stageClient) and is kept for ssa. The live
// object is read only to explain a refusal: ssa skips some objects and
// recreates others, and a refusal of those does not fail the stage.
func (m *Manager) validateObject(ctx context.Context, obj *unstructured.Unstructured, defs stageDefinitions, opts ssa.ApplyOptions, checked *Validation) error {
	id := utils.FmtUnstructured(obj)
	if !utils.IsKubernetesObject(obj) {
		return fmt.Errorf("%s: apiVersion, kind and metadata.name are required", id)
	}
	gvk := obj.GroupVersionKind()
	if utils.AnyInMetadata(obj, opts.ExclusionSelector) {
		return nil
	}
	if defs.kinds[gvk.GroupKind()] {
		checked.deferObject(obj)
		return nil
	}

	mapping, err := m.client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return fmt.Errorf("%s: unknown kind %s: the cluster does not serve it and no CRD in the stage defines it", id, gvk)
		}
		return fmt.Errorf("%s: %w", id, err)
	}
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace && obj.GetNamespace() == "" {
		return fmt.Errorf("%s: namespace not specified for the namespaced kind %s", id, gvk.Kind)
	}

	dryRun := obj.DeepCopy()
	body, err := requestBody(dryRun)
	if err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	err = m.client.Patch(ctx, dryRun, client.Apply, client.DryRunAll, client.ForceOwnership, client.FieldOwner(m.fieldManager))
	if err == nil {
		checked.record(obj, body, dryRun, !utils.AnyInMetadata(obj, opts.IfNotPresentSelector))
		return nil
	}

	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(gvk)
	getErr := m.client.Get(ctx, client.ObjectKeyFromObject(obj), existing)
	if getErr != nil && !apierrors.IsNotFound(getErr) {
		return fmt.Errorf("%s: reading the live object: %w", id, getErr)
	}
	exists := getErr == nil
	switch {
	case exists && (utils.AnyInMetadata(existing, opts.ExclusionSelector) || utils.AnyInMetadata(obj, opts.IfNotPresentSelector)):
		return nil
	case !exists && apierrors.IsNotFound(err) && defs.namespaces[obj.GetNamespace()]:
		checked.deferObject(obj)
		return nil
	case exists && ssaerrors.IsImmutableError(err) && forced(obj, existing, opts):
		return m.validateAsNew(ctx, obj)
	default:
		return ssaerrors.NewDryRunErr(err, obj)
	}
}

// forced tells whether ssa will delete and recreate the object on an
// immutable-field error.
func forced(obj, existing *unstructured.Unstructured, opts ssa.ApplyOptions) bool {
	return opts.Force || utils.AnyInMetadata(obj, opts.ForceSelector) || utils.AnyInMetadata(existing, opts.ForceSelector)
}

// validateAsNew dry-runs the creation of an object that exists. ssa counts
// every Invalid error as an immutable-field change and, under force, deletes
// the live object before finding out that the new one is refused too. The API
// server validates a create before it looks for a name clash, so
// AlreadyExists here means the object would be accepted once recreated.
func (m *Manager) validateAsNew(ctx context.Context, obj *unstructured.Unstructured) error {
	fresh := obj.DeepCopy()
	fresh.SetResourceVersion("")
	err := m.client.Create(ctx, fresh, client.DryRunAll, client.FieldOwner(m.fieldManager))
	if err == nil || apierrors.IsAlreadyExists(err) {
		return nil
	}
	return ssaerrors.NewDryRunErr(err, obj)
}

// objectErrors is a list of errors, one per object, read as one sentence.
type objectErrors []error

func (e objectErrors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (e objectErrors) Unwrap() []error { return e }

// joinErrors drops nil errors and returns nil when none is left. Unlike
// errors.Join it separates messages with "; ", as condition messages are one
// line.
func joinErrors(errs []error) error {
	var out objectErrors
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// ChangesValidation tells whether a change set (of an apply or a delete)
// created, changed or deleted an object that may change how the API server
// judges other objects, so that a validation made before it may no longer
// hold. Anything may, but a few built-in kinds: the API server consults
// CRDs, API services, Namespaces, RBAC, admission webhooks and policies,
// quotas and limit ranges itself, and policy engines (Kyverno, Gatekeeper)
// are configured with custom resources. So every kind counts except the
// workload kinds of inertKinds.
//
// What remains possible: a change of one of those kinds that changes what an
// admission webhook or a policy engine decides, such as a new image of the
// webhook's Deployment or a policy an engine reads from a ConfigMap.
func ChangesValidation(cs *ssa.ChangeSet) bool {
	for _, e := range cs.Entries {
		if e.Action == ssa.UnchangedAction || e.Action == ssa.SkippedAction {
			continue
		}
		if !inertKinds[e.ObjMetadata.GroupKind] {
			return true
		}
	}
	return false
}

// inertKinds are the built-in kinds the API server does not consult when it
// admits other objects.
var inertKinds = map[schema.GroupKind]bool{
	{Kind: "ConfigMap"}:                                     true,
	{Kind: "Secret"}:                                        true,
	{Kind: "Service"}:                                       true,
	{Kind: "ServiceAccount"}:                                true,
	{Kind: "PersistentVolumeClaim"}:                         true,
	{Group: "apps", Kind: "Deployment"}:                     true,
	{Group: "apps", Kind: "StatefulSet"}:                    true,
	{Group: "apps", Kind: "DaemonSet"}:                      true,
	{Group: "batch", Kind: "Job"}:                           true,
	{Group: "batch", Kind: "CronJob"}:                       true,
	{Group: "networking.k8s.io", Kind: "Ingress"}:           true,
	{Group: "networking.k8s.io", Kind: "NetworkPolicy"}:     true,
	{Group: "policy", Kind: "PodDisruptionBudget"}:          true,
	{Group: "autoscaling", Kind: "HorizontalPodAutoscaler"}: true,
}
