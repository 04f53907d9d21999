package apply

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// NewInventory lists the objects of a change set as inventory entries, in the
// format of kustomize-controller: id "<namespace>_<name>_<group>_<kind>" (the
// cli-utils ObjMetadata string) and v the API version. Entries are sorted by
// id and unique, so the same stage always gives the same inventory.
//
// Every entry of the change set is listed, skipped ones included, like
// kustomize-controller: pruning re-checks the ownership labels anyway.
func NewInventory(cs *ssa.ChangeSet) *stagesetv1.ResourceInventory {
	inv := &stagesetv1.ResourceInventory{Entries: []stagesetv1.ResourceRef{}}
	if cs == nil {
		return inv
	}
	seen := make(map[string]bool, len(cs.Entries))
	for _, e := range cs.Entries {
		id := e.ObjMetadata.String()
		if seen[id] {
			continue
		}
		seen[id] = true
		inv.Entries = append(inv.Entries, stagesetv1.ResourceRef{ID: id, Version: versionOf(e.GroupVersion)})
	}
	sort.Slice(inv.Entries, func(i, j int) bool { return inv.Entries[i].ID < inv.Entries[j].ID })
	return inv
}

// versionOf returns the version of a change set entry. ssa fills
// ChangeSetEntry.GroupVersion with the bare version ("v1"); entries built by
// hand may carry "group/version", and the inventory keeps the version only,
// since the group is part of the id.
func versionOf(groupVersion string) string {
	if i := strings.LastIndex(groupVersion, "/"); i >= 0 {
		return groupVersion[i+1:]
	}
	return groupVersion
}

// InventoryMetadata returns the identities of the inventory's objects, in
// inventory order.
func InventoryMetadata(inv *stagesetv1.ResourceInventory) (object.ObjMetadataSet, error) {
	if inv == nil {
		return object.ObjMetadataSet{}, nil
	}
	set := make(object.ObjMetadataSet, 0, len(inv.Entries))
	for _, e := range inv.Entries {
		id, err := object.ParseObjMetadata(e.ID)
		if err != nil {
			return nil, fmt.Errorf("invalid inventory entry %q: %w", e.ID, err)
		}
		set = append(set, id)
	}
	return set, nil
}

// InventoryObjects returns minimal objects (apiVersion, kind, name and
// namespace) for the inventory's entries, enough to delete or look up the
// live objects.
func InventoryObjects(inv *stagesetv1.ResourceInventory) ([]*unstructured.Unstructured, error) {
	if inv == nil {
		return nil, nil
	}
	objects := make([]*unstructured.Unstructured, 0, len(inv.Entries))
	for _, e := range inv.Entries {
		obj, err := entryObject(e)
		if err != nil {
			return nil, err
		}
		objects = append(objects, obj)
	}
	return objects, nil
}

// Stale returns the objects of old that new does not list, by id: an object
// whose API version changed is the same object and is not stale.
func Stale(old, new *stagesetv1.ResourceInventory) ([]*unstructured.Unstructured, error) {
	if old == nil {
		return nil, nil
	}
	current := map[string]bool{}
	if new != nil {
		for _, e := range new.Entries {
			current[e.ID] = true
		}
	}
	var stale []*unstructured.Unstructured
	for _, e := range old.Entries {
		if current[e.ID] {
			continue
		}
		obj, err := entryObject(e)
		if err != nil {
			return nil, err
		}
		stale = append(stale, obj)
	}
	return stale, nil
}

func entryObject(e stagesetv1.ResourceRef) (*unstructured.Unstructured, error) {
	id, err := object.ParseObjMetadata(e.ID)
	if err != nil {
		return nil, fmt.Errorf("invalid inventory entry %q: %w", e.ID, err)
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(id.GroupKind.WithVersion(e.Version))
	obj.SetName(id.Name)
	obj.SetNamespace(id.Namespace)
	return obj, nil
}

// MergeInventories returns the union of two inventories.
func MergeInventories(a, b *stagesetv1.ResourceInventory) *stagesetv1.ResourceInventory {
	seen := map[string]bool{}
	out := NewInventory(nil)
	for _, inv := range []*stagesetv1.ResourceInventory{b, a} {
		if inv == nil {
			continue
		}
		for _, e := range inv.Entries {
			if !seen[e.ID] {
				seen[e.ID] = true
				out.Entries = append(out.Entries, e)
			}
		}
	}
	return out
}

// InventoryOf lists objects as inventory entries.
func InventoryOf(objects []*unstructured.Unstructured) *stagesetv1.ResourceInventory {
	cs := ssa.NewChangeSet()
	for _, o := range objects {
		cs.Add(ssa.ChangeSetEntry{ObjMetadata: object.UnstructuredToObjMetadata(o), GroupVersion: o.GroupVersionKind().GroupVersion().String()})
	}
	return NewInventory(cs)
}
