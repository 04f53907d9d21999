package build

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Claims records which stage each object of a StageSet belongs to: an
// object built by two stages would be applied by both and pruned by
// either, so the controller refuses the build, and stagesetctl build with it.
type Claims map[string]string

// Claim records that stage builds objects, or names the first object
// another stage already built.
func (c Claims) Claim(stage string, objects []*unstructured.Unstructured) error {
	for _, o := range objects {
		id := ObjectID(o)
		if other, taken := c[id]; taken {
			return fmt.Errorf("object %s is claimed by stages %q and %q", id, other, stage)
		}
		c[id] = stage
	}
	return nil
}

// ObjectID names an object for messages: Kind/namespace/name
// (group-qualified kind when the group is not core).
func ObjectID(o *unstructured.Unstructured) string {
	kind := o.GetKind()
	if g := o.GroupVersionKind().Group; g != "" {
		kind += "." + g
	}
	if ns := o.GetNamespace(); ns != "" {
		return kind + "/" + ns + "/" + o.GetName()
	}
	return kind + "/" + o.GetName()
}
