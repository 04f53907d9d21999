package validation

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// fuzzStageSet builds a StageSet whose user-written fields come from the
// fuzz inputs; the bits of shape pick which optional parts it has, so one
// input can reach every rule.
func fuzzStageSet(name, namespace, stage1, stage2, path, targetNamespace, expr, schedule, zone, ref, refNamespace, patch, patchType, url string, duration int64, shape uint16) *stagesetv1.StageSet {
	has := func(bit uint) bool { return shape&(1<<bit) != 0 }
	dur := &metav1.Duration{Duration: time.Duration(duration)}
	obj := &stagesetv1.StageSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: stagesetv1.StageSetSpec{
			Interval:        metav1.Duration{Duration: time.Duration(duration) + time.Minute},
			TargetNamespace: targetNamespace,
			DeletionPolicy:  patchType,
		},
	}
	spec := &obj.Spec
	if has(0) {
		spec.RetryInterval, spec.Timeout = dur, dur
	}
	if has(1) {
		spec.SourceRef = &stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: ref, Namespace: refNamespace}
	}
	if has(2) {
		spec.DependsOn = []meta.DependencyReference{{Name: ref, Namespace: refNamespace, ReadyExpr: expr}, {Name: name}}
	}
	if has(3) {
		spec.UpdateWindows = []stagesetv1.UpdateWindow{{Type: patchType, Schedule: schedule, Duration: *dur, TimeZone: zone}}
	}
	if has(4) {
		spec.DriftDetection = &stagesetv1.DriftDetection{Mode: patchType}
	}
	a := stagesetv1.Stage{Name: stage1, Path: path, TargetNamespace: targetNamespace}
	b := stagesetv1.Stage{Name: stage2, Path: "./" + path}
	if has(5) {
		a.SourceRef = &stagesetv1.SourceReference{APIVersion: refNamespace, Kind: patchType, Name: ref, Namespace: namespace}
	}
	if has(6) {
		a.Timeout = dur
	}
	if has(7) {
		a.HealthCheckExprs = []kustomize.CustomHealthCheck{{APIVersion: refNamespace, Kind: ref,
			HealthCheckExpressions: kustomize.HealthCheckExpressions{Current: expr, Failed: schedule}}}
	}
	target := stagesetv1.ObjectReference{APIVersion: refNamespace, Kind: ref, Name: name, Namespace: namespace}
	var actions []stagesetv1.Action
	if has(8) {
		actions = append(actions, stagesetv1.Action{Name: stage2, Patch: &stagesetv1.PatchAction{Target: target, Type: patchType, Patch: patch}})
	}
	if has(9) {
		actions = append(actions, stagesetv1.Action{Name: stage1, HTTP: &stagesetv1.HTTPAction{URL: url, Method: patchType,
			HeadersFrom: &meta.LocalObjectReference{Name: ref}, ExpectedStatus: []int{int(duration % 1000)}}})
	}
	if has(10) {
		actions = append(actions, stagesetv1.Action{Name: stage2, Job: &stagesetv1.JobAction{Path: path}, Timeout: dur})
	}
	if has(11) {
		w := &stagesetv1.WaitAction{Expr: expr}
		if has(12) {
			w.Target = &target
		}
		if has(13) {
			w.Duration = dur
		}
		actions = append(actions, stagesetv1.Action{Name: url, Wait: w})
	}
	if len(actions) > 0 {
		a.Actions = &stagesetv1.StageActions{Pre: actions, OnFailure: actions[:1]}
	}
	if has(14) {
		spec.Stages = []stagesetv1.Stage{a, b}
	} else if !has(15) {
		spec.Stages = []stagesetv1.Stage{a}
	}
	return obj
}

// FuzzStageSet checks the spec rules on random StageSets: no panic (the
// webhook and the reconciler run them on whatever the API server stored),
// the same answer every time, every problem at a field path under spec,
// and --no-cross-namespace-refs only adding refusals of its own kind.
func FuzzStageSet(f *testing.F) {
	f.Add("shop", "apps", "a", "b", "./a", "shop", "self.status.ready == true", "0 9 * * MON-FRI", "Europe/Berlin",
		"repo", "other", "spec:\n  replicas: 2\n", "merge", "https://hooks.example.com/x", int64(time.Minute), uint16(0xffff))
	f.Add("shop", "apps", "a", "a", "../x", "Shop", "self.(", "61 * * * *", "Mars/Base",
		"Repo", "", "[", "json6902", "ftp://x", int64(-1), uint16(0x7fff))
	f.Add("", "", "", "", "/abs", "", "", "", "Local", "", "", "", "", "", int64(0), uint16(0))
	f.Add("x", "y", strings.Repeat("a", 64), "b", "a/../..", "-", "has(", "TZ=UTC", "", "a..b", "-ns", "- op: add", "strategic", "http://", int64(1), uint16(0x5aa5))
	f.Add("shop", "apps", "a", "b", "a", "", "dep.status.x", "@every 1h", "UTC", "shop", "apps", "{}", "json6902", "https://h/x?token=s", int64(999), uint16(0x2f04))
	f.Fuzz(func(t *testing.T, name, namespace, stage1, stage2, path, targetNamespace, expr, schedule, zone, ref, refNamespace, patch, patchType, url string, duration int64, shape uint16) {
		obj := fuzzStageSet(name, namespace, stage1, stage2, path, targetNamespace, expr, schedule, zone, ref, refNamespace, patch, patchType, url, duration, shape)
		errs := StageSet(obj, Options{})
		if again := StageSet(obj, Options{}); !reflect.DeepEqual(errs, again) {
			t.Fatalf("two validations of one StageSet differ:\n%v\n%v", errs, again)
		}
		strict := StageSet(obj, Options{NoCrossNamespaceRefs: true})
		for _, e := range append(errs, strict...) {
			if e.Field != "spec" && !strings.HasPrefix(e.Field, "spec.") {
				t.Fatalf("error without a field path under spec: %q", e.Error())
			}
			if e.Error() == "" || e.Type == "" {
				t.Fatalf("error without a message or type at %s", e.Field)
			}
		}
		var withoutPolicy field.ErrorList
		for _, e := range strict {
			if !IsCrossNamespace(e) {
				withoutPolicy = append(withoutPolicy, e)
			}
		}
		if !reflect.DeepEqual(errs, withoutPolicy) && len(errs)+len(withoutPolicy) > 0 {
			t.Fatalf("--no-cross-namespace-refs changed more than cross-namespace refusals:\nwithout: %v\nwith: %v", errs, strict)
		}
		if len(strict) > 0 {
			if r := Reason(strict); r != stagesetv1.InvalidSpecReason && r != stagesetv1.AccessDeniedReason {
				t.Fatalf("Reason = %q", r)
			}
		}
	})
}
