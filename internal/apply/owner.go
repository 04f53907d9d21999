package apply

import (
	"github.com/fluxcd/pkg/ssa/utils"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/names"
)

// Owner identifies the stage that applies objects. It becomes the labels
// stageset.io/name, stageset.io/namespace and stageset.io/stage on every
// applied object, and only objects that still carry all three are pruned.
type Owner struct {
	// Name and Namespace of the StageSet.
	Name, Namespace string
	// Stage is the name of the stage within the StageSet.
	Stage string
}

// Labels returns the ownership labels of the stage. A StageSet name may be
// a 253-character DNS subdomain while a label value holds 63 characters:
// values go through names.LabelValue, which keeps every value that fits
// unchanged (so objects labelled by earlier versions stay owned) and cuts
// and hashes the others, as on the snapshot and ledger Secrets.
func (o Owner) Labels() map[string]string {
	return map[string]string{
		stagesetv1.NameLabel:      names.LabelValue(o.Name),
		stagesetv1.NamespaceLabel: names.LabelValue(o.Namespace),
		stagesetv1.StageLabel:     names.LabelValue(o.Stage),
	}
}

// SetLabels adds the ownership labels to every object, keeping its other
// labels.
func (o Owner) SetLabels(objects ...*unstructured.Unstructured) {
	utils.SetCommonMetadata(objects, o.Labels(), nil)
}
