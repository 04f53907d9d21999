package action

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestVerb(t *testing.T) {
	tests := []struct {
		action stagesetv1.Action
		want   string
	}{
		{stagesetv1.Action{Patch: &stagesetv1.PatchAction{}}, "patch"},
		{stagesetv1.Action{HTTP: &stagesetv1.HTTPAction{}}, "http"},
		{stagesetv1.Action{Job: &stagesetv1.JobAction{}}, "job"},
		{stagesetv1.Action{Wait: &stagesetv1.WaitAction{}}, "wait"},
		{stagesetv1.Action{}, ""},
	}
	for _, tt := range tests {
		if got := Verb(tt.action); got != tt.want {
			t.Errorf("Verb(%+v) = %q, want %q", tt.action, got, tt.want)
		}
	}
}

func TestRun_noVerb(t *testing.T) {
	g := NewWithT(t)
	g.Expect((&Runner{}).Run(context.Background(), stagesetv1.Action{Name: "empty"}, time.Minute)).
		To(MatchError(ContainSubstring("sets none of patch, http, job or wait")))
}

func TestRun_defaultTimeout(t *testing.T) {
	g := NewWithT(t)
	a := stagesetv1.Action{Name: "settle", Wait: &stagesetv1.WaitAction{Duration: duration(time.Hour)}}
	g.Expect((&Runner{}).Run(context.Background(), a, 100*time.Millisecond)).To(MatchError(ContainSubstring("deadline exceeded")))
}

func TestJobState(t *testing.T) {
	cond := func(typ, status, msg string) any {
		return map[string]any{"type": typ, "status": status, "message": msg}
	}
	tests := []struct {
		name     string
		spec     map[string]any
		status   map[string]any
		done     bool
		failure  string
		progress string
	}{
		{name: "new", status: map[string]any{}, progress: "0 of 1 completions"},
		{name: "complete condition", status: map[string]any{"conditions": []any{cond("Complete", "True", "")}}, done: true, progress: "complete"},
		{name: "failed condition", status: map[string]any{"conditions": []any{cond("Failed", "True", "deadline exceeded")}}, failure: "deadline exceeded", progress: "failed"},
		{name: "condition not true", status: map[string]any{"conditions": []any{cond("Failed", "False", "")}}, progress: "0 of 1 completions"},
		{name: "enough completions", spec: map[string]any{"completions": int64(2)}, status: map[string]any{"succeeded": int64(2)}, done: true, progress: "2 of 2 completions"},
		{name: "not enough completions", spec: map[string]any{"completions": int64(3)}, status: map[string]any{"succeeded": int64(2)}, progress: "2 of 3 completions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			job := &unstructured.Unstructured{Object: map[string]any{"spec": tt.spec, "status": tt.status}}
			if tt.spec == nil {
				job.Object["spec"] = map[string]any{}
			}
			done, failure, progress := jobState(job)
			g.Expect(done).To(Equal(tt.done))
			g.Expect(failure).To(Equal(tt.failure))
			g.Expect(progress).To(Equal(tt.progress))
		})
	}
}
