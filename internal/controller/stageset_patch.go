package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// objectPatcher writes what a reconcile changed in a StageSet: its
// finalizers, and its status in one merge patch of the status subresource.
// One patch matters: fluxcd's patch helper writes the conditions and the
// rest of the status in two requests, and a reader between them saw a new
// Ready condition over stale stage phases. The controller is the only
// writer of the status, so the patch carries no conflict resolution.
type objectPatcher struct {
	client client.Client
	owner  string
	// written is the StageSet as last read or written.
	written *stagesetv1.StageSet
	// wrote, when set, is told the resourceVersion of each write.
	wrote func(resourceVersion string)
}

func newObjectPatcher(c client.Client, owner string, obj *stagesetv1.StageSet) *objectPatcher {
	return &objectPatcher{client: c, owner: owner, written: obj.DeepCopy()}
}

// Patch writes the finalizers and the status of obj where they differ from
// what was last written. obj keeps its status whatever the API server
// answers to the finalizer patch.
func (p *objectPatcher) Patch(ctx context.Context, obj *stagesetv1.StageSet) error {
	if !equality.Semantic.DeepEqual(p.written.Finalizers, obj.Finalizers) {
		status := obj.Status.DeepCopy()
		base := p.written.DeepCopy()
		base.Status = *status // only metadata goes into this patch
		// A merge patch replaces the whole list: the optimistic lock keeps
		// it from dropping a finalizer another controller added meanwhile.
		patch := client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})
		if err := p.client.Patch(ctx, obj, patch, client.FieldOwner(p.owner)); err != nil {
			return err
		}
		obj.Status = *status
		p.written.ObjectMeta = *obj.ObjectMeta.DeepCopy()
		p.record(obj)
	}
	if !equality.Semantic.DeepEqual(p.written.Status, obj.Status) {
		if err := p.client.Status().Patch(ctx, obj, client.MergeFrom(p.written), client.FieldOwner(p.owner)); err != nil {
			return err
		}
		p.record(obj)
	}
	p.written = obj.DeepCopy()
	return nil
}

func (p *objectPatcher) record(obj *stagesetv1.StageSet) {
	if p.wrote != nil {
		p.wrote(obj.ResourceVersion)
	}
}
