package apply

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"sync"

	"github.com/fluxcd/cli-utils/pkg/object"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Validation is what the validation pass of a stage learnt: the server-side
// dry-run of every object it could dry-run. Apply uses it to answer the
// reads and dry-runs ssa would send again (stageClient), and to skip the
// pass when it already ran (ApplyOptions.Validation, a stage validated ahead
// of its turn).
type Validation struct {
	mu      sync.Mutex
	dryRuns map[object.ObjMetadata]dryRun
	// passed are the objects the pass accepted, dry-run or not.
	passed map[object.ObjMetadata]bool
	// deferred are the objects that could not be dry-run before their
	// stage wrote anything (see validate.go); Apply dry-runs them once the
	// stage's definitions are applied.
	deferred map[object.ObjMetadata]bool
}

// dryRun is the answer to one server-side apply dry-run.
type dryRun struct {
	body   [sha256.Size]byte // of the request
	result *unstructured.Unstructured
	// answersRead tells that the object's absence may answer ssa's read:
	// not for stageset.io/ssa: IfNotPresent objects, which must not be
	// written if someone created them since.
	answersRead bool
}

func newValidation() *Validation {
	return &Validation{dryRuns: map[object.ObjMetadata]dryRun{}, passed: map[object.ObjMetadata]bool{}, deferred: map[object.ObjMetadata]bool{}}
}

func (v *Validation) record(obj *unstructured.Unstructured, body [sha256.Size]byte, result *unstructured.Unstructured, answersRead bool) {
	// ssa reads the live object's managed fields, never the dry-run's:
	// dropping them keeps a big stage's answers small. Of an object the
	// dry-run would create, ssa reads only the identity and the empty
	// resourceVersion (it is drifted, and created, by that alone).
	result.SetManagedFields(nil)
	if result.GetResourceVersion() == "" {
		stub := &unstructured.Unstructured{}
		stub.SetGroupVersionKind(result.GroupVersionKind())
		stub.SetNamespace(result.GetNamespace())
		stub.SetName(result.GetName())
		result = stub
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.dryRuns[object.UnstructuredToObjMetadata(obj)] = dryRun{body: body, result: result, answersRead: answersRead}
}

func (v *Validation) deferObject(obj *unstructured.Unstructured) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.deferred[object.UnstructuredToObjMetadata(obj)] = true
}

func (v *Validation) isDeferred(obj *unstructured.Unstructured) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.deferred[object.UnstructuredToObjMetadata(obj)]
}

// absorb adds the dry-runs of a later pass (of deferred objects).
func (v *Validation) absorb(later *Validation) {
	v.mu.Lock()
	defer v.mu.Unlock()
	later.mu.Lock()
	defer later.mu.Unlock()
	for id, d := range later.dryRuns {
		v.dryRuns[id] = d
		delete(v.deferred, id)
	}
}

// pass marks objects as accepted by the pass.
func (v *Validation) pass(objects []*unstructured.Unstructured) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, obj := range objects {
		v.passed[object.UnstructuredToObjMetadata(obj)] = true
	}
}

// covers tells whether the validation passed exactly these objects: each
// was accepted, and those that were dry-run were sent with the same body.
func (v *Validation) covers(objects []*unstructured.Unstructured) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, obj := range objects {
		id := object.UnstructuredToObjMetadata(obj)
		if !v.passed[id] {
			return false
		}
		d, ok := v.dryRuns[id]
		if !ok {
			// Deferred, or not dry-run (stageset.io/ssa: Ignore, or an
			// existing object the stage does not write).
			continue
		}
		if body, err := requestBody(obj); err != nil || body != d.body {
			return false
		}
	}
	return true
}

// take returns, once, the dry-run recorded for obj when the request body is
// the same.
func (v *Validation) take(obj *unstructured.Unstructured, body [sha256.Size]byte) (*unstructured.Unstructured, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	id := object.UnstructuredToObjMetadata(obj)
	d, ok := v.dryRuns[id]
	if !ok || d.body != body {
		return nil, false
	}
	delete(v.dryRuns, id)
	return d.result, true
}

// forget drops what the pass learnt of an object.
func (v *Validation) forget(id object.ObjMetadata) {
	v.mu.Lock()
	defer v.mu.Unlock()
	delete(v.dryRuns, id)
}

// missing tells whether the dry-run of the object showed that it does not
// exist: the API server sets no resourceVersion on an object it would
// create.
func (v *Validation) missing(id object.ObjMetadata) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	d, ok := v.dryRuns[id]
	return ok && d.answersRead && d.result.GetResourceVersion() == ""
}

// requestBody is the digest of a server-side apply request of obj: the JSON
// that controller-runtime sends for client.Apply.
func requestBody(obj client.Object) ([sha256.Size]byte, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256(data), nil
}

// stageClient is the client ssa works through in one Apply call. For each
// object ssa reads the live copy, dry-runs the apply, compares both and
// writes only on drift; the validation pass has just dry-run the same
// object with the same request. So:
//
//   - ssa's dry-run is answered with the validation pass's answer when the
//     request body is the same (once per object);
//   - ssa's read is answered with NotFound when that dry-run showed that the
//     object did not exist, unless the object is stageset.io/ssa:
//     IfNotPresent (created since, it must be left alone). Other reads go to
//     the API server.
//
// A rollout of new objects then costs a dry-run and a write per object
// instead of two reads, two dry-runs and a write.
//
// Why an answer given a little earlier is sound: the live object is always
// read afresh when it existed, and ssa writes the manifest (never the
// dry-run result) whenever the dry-run result and the live object differ. If
// they are equal, the live object is already what applying the manifest to
// the earlier state gives, and applying it again would change nothing
// (server-side apply is idempotent). An object created by someone else
// after the dry-run found it missing is applied over with the stage's
// field manager and ForceOwnership, as it would be anyway; its change set
// entry then says created instead of configured.
//
// It also records every object the API server returned from a read or a
// write (never a dry-run) in live, where Wait judges health from them.
type stageClient struct {
	client.Client
	checked *Validation
	live    *LiveObjects
}

func (c *stageClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	u, isUnstructured := obj.(*unstructured.Unstructured)
	if isUnstructured && c.checked != nil {
		id := object.ObjMetadata{GroupKind: u.GroupVersionKind().GroupKind(), Namespace: key.Namespace, Name: key.Name}
		if c.checked.missing(id) {
			return apierrors.NewNotFound(c.resource(u.GroupVersionKind()), key.Name)
		}
	}
	if err := c.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if isUnstructured {
		c.live.put(u)
	}
	return nil
}

func (c *stageClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	u, isUnstructured := obj.(*unstructured.Unstructured)
	dryRun := isDryRun(opts)
	if isUnstructured && dryRun && patch.Type() == types.ApplyPatchType && c.checked != nil {
		if body, err := requestBody(u); err == nil {
			if result, ok := c.checked.take(u, body); ok {
				u.Object = result.DeepCopy().Object
				return nil
			}
		}
	}
	if isUnstructured && c.checked != nil {
		// Whatever the validation pass learnt of the object is out of date
		// once a request about it goes to the API server: a read after a
		// write must not be answered NotFound.
		c.checked.forget(object.UnstructuredToObjMetadata(u))
	}
	if err := c.Client.Patch(ctx, obj, patch, opts...); err != nil {
		return err
	}
	if isUnstructured && !dryRun {
		c.live.put(u)
	}
	return nil
}

// resource names the resource of a kind for a NotFound error.
func (c *stageClient) resource(gvk schema.GroupVersionKind) schema.GroupResource {
	if mapping, err := c.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
		return mapping.Resource.GroupResource()
	}
	return schema.GroupResource{Group: gvk.Group, Resource: gvk.Kind}
}

func isDryRun(opts []client.PatchOption) bool {
	o := &client.PatchOptions{}
	o.ApplyOptions(opts)
	return len(o.DryRun) > 0
}
