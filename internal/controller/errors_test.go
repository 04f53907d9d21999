package controller

import (
	"errors"
	"fmt"
	"testing"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
	"github.com/stageset/stageset-controller/internal/source"
)

func TestSourceErrorsAreClassified(t *testing.T) {
	ref := stagesetv1.SourceReference{Kind: stagesetv1.GitRepositoryKind, Name: "repo", Namespace: "other"}
	cases := []struct {
		err                     error
		reason                  string
		terminal, waitingForFix bool
	}{
		{&source.NotReadyError{Ref: ref, Reason: "not found"}, stagesetv1.SourceNotReadyReason, false, true},
		{fmt.Errorf("wrapped: %w", &source.AccessDeniedError{Ref: ref, Namespace: "apps"}), stagesetv1.AccessDeniedReason, true, false},
		{errors.New("connection refused"), stagesetv1.SourceNotReadyReason, false, false},
	}
	for _, tc := range cases {
		re := asRunError(classifySourceError(tc.err), "")
		if re.reason != tc.reason || re.terminal != tc.terminal || re.waiting != tc.waitingForFix {
			t.Errorf("%v: got reason=%s terminal=%v waiting=%v", tc.err, re.reason, re.terminal, re.waiting)
		}
	}
}

func TestStageFailedMessageForm(t *testing.T) {
	err := stageFailed(stagesetv1.StageFailedReason, "db", errors.New("boom"))
	if got, want := err.Error(), `stage "db" failed: boom`; got != want {
		t.Fatalf("message = %q, want %q", got, want)
	}
}
