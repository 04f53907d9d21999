// Package v1 contains the v1 API of the stageset.io group: the StageSet kind.
//
// +kubebuilder:object:generate=true
// +groupName=stageset.io
package v1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

// GroupName is the API group of the StageSet kind.
const GroupName = "stageset.io"

var (
	// GroupVersion is the group and version of the StageSet API.
	GroupVersion = schema.GroupVersion{Group: GroupName, Version: "v1"}

	// SchemeBuilder registers the types of this group version with a scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
