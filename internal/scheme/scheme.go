// Package scheme builds the runtime scheme shared by the controller, the CLI
// and the tests: client-go's built-in types, the Flux source kinds and the
// StageSet API.
package scheme

import (
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// New returns a scheme with every type the controller reads or writes.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(sourcev1.AddToScheme(s))
	utilruntime.Must(stagesetv1.AddToScheme(s))
	return s
}
