package controller

import (
	"errors"
	"testing"

	"github.com/fluxcd/cli-utils/pkg/object"
	"github.com/fluxcd/pkg/ssa"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/runtime/schema"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/apply"
	"github.com/stageset/stageset-controller/internal/testenv"
)

// A stage validated ahead is used only when it passed, is the stage asked
// for, and the stage before changed nothing that judges other objects.
func TestAheadValidationIsUsedOnlyWhenValid(t *testing.T) {
	finished := func(result *apply.Validation, err error) *aheadValidation {
		a := &aheadValidation{stage: "app", cancel: func() {}, done: make(chan struct{}), result: result, err: err}
		close(a.done)
		return a
	}
	changes := func(group, kind string) *ssa.ChangeSet {
		cs := ssa.NewChangeSet()
		cs.Add(ssa.ChangeSetEntry{ObjMetadata: object.ObjMetadata{GroupKind: schema.GroupKind{Group: group, Kind: kind}, Name: "x"}, Action: ssa.CreatedAction})
		return cs
	}
	passed := &apply.Validation{}

	if got := finished(passed, nil).take("app"); got != passed {
		t.Error("a passed validation of the stage is used")
	}
	if got := finished(passed, nil).take("web"); got != nil {
		t.Error("the validation of another stage is not used")
	}
	if got := finished(nil, errors.New("refused")).take("app"); got != nil {
		t.Error("a failed validation is not used")
	}
	a := finished(passed, nil)
	a.judge(changes("", "ConfigMap"))
	if a.take("app") != passed {
		t.Error("a ConfigMap of the stage before does not make it stale")
	}
	a = finished(passed, nil)
	a.judge(changes("apps", "Deployment"))
	if a.take("app") != passed {
		t.Error("a Deployment of the stage before does not make it stale")
	}
	for _, gk := range [][2]string{{"", "Namespace"}, {"kyverno.io", "ClusterPolicy"}, {"admissionregistration.k8s.io", "ValidatingAdmissionPolicy"}} {
		a = finished(passed, nil)
		a.judge(changes(gk[0], gk[1]))
		if a.take("app") != nil {
			t.Errorf("a %s created by the stage before makes it stale", gk[1])
		}
	}
	var none *aheadValidation
	none.judge(changes("", "Namespace"))
	none.stop()
	if none.take("app") != nil {
		t.Error("no validation ahead")
	}
}

// A stage whose objects go into a Namespace that the stage before creates
// cannot be validated ahead: it is validated at its turn, and rolls out.
func TestStageInANamespaceOfTheStageBefore(t *testing.T) {
	g := NewWithT(t)
	ns := env.NewNamespace(t)
	target := testenv.RandomName("made-by-stage")
	src := newRepo(t, stagesetv1.GitRepositoryKind, ns, "shop", "main@sha1:1111", files{
		"ns/ns.yaml":   "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + target + "\n",
		"app/app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: " + target + "\ndata:\n  k: v\n",
		"web/web.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: " + target + "\ndata:\n  k: v\n",
	})
	obj := newStageSet(ns, "shop", src, stage("ns", "./ns"), stage("app", "./app"), stage("web", "./web"))
	create(t, obj)
	eventuallyReason(t, g, obj, "True/Succeeded")
	g.Expect(exists("v1", "ConfigMap", target, "app")()).To(BeTrue())
	g.Expect(exists("v1", "ConfigMap", target, "web")()).To(BeTrue())
}
