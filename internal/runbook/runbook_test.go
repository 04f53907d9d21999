package runbook

import (
	"strings"
	"testing"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestAnnotate(t *testing.T) {
	links := NewLinks("https://docs.example.com/runbooks/")
	tests := []struct {
		name, reason, message, want string
		links                       Links
	}{
		{"actionable reason", stagesetv1.StageFailedReason, `stage "a" failed: boom`, `stage "a" failed: boom (runbook: https://docs.example.com/runbooks/stagefailed/)`, links},
		{"carried over once", stagesetv1.RolledBackReason, "rolled back (runbook: https://docs.example.com/runbooks/rolledback/)", "rolled back (runbook: https://docs.example.com/runbooks/rolledback/)", links},
		{"carried over twice by an older build", stagesetv1.RolledBackReason, "x (runbook: a) (runbook: a)", "x (runbook: https://docs.example.com/runbooks/rolledback/)", links},
		{"another base replaced", stagesetv1.BuildFailedReason, "bad (runbook: https://old.example/buildfailed/)", "bad (runbook: https://docs.example.com/runbooks/buildfailed/)", links},
		{"Succeeded", stagesetv1.SucceededReason, "Applied revision: rev-1 (1 stages)", "Applied revision: rev-1 (1 stages)", links},
		{"Suspended", stagesetv1.SuspendedReason, "Reconciliation is suspended", "Reconciliation is suspended", links},
		{"Progressing", stagesetv1.ProgressingReason, "Reconciliation in progress", "Reconciliation in progress", links},
		{"empty base", stagesetv1.StageFailedReason, "boom", "boom", NewLinks("")},
		{"empty base drops a carried link", stagesetv1.StageFailedReason, "boom (runbook: https://old.example/stagefailed/)", "boom", NewLinks("")},
		{"a base with parentheses, carried over", stagesetv1.RolledBackReason, "x (runbook: https://wiki.example/Runbooks_(StageSet)/rolledback/)", "x (runbook: https://wiki.example/Runbooks_(StageSet)/rolledback/)", NewLinks("https://wiki.example/Runbooks_(StageSet)")},
		{"parentheses in the message stay", stagesetv1.StageFailedReason, "apply (dry-run) failed", "apply (dry-run) failed (runbook: https://docs.example.com/runbooks/stagefailed/)", links},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.links.Annotate(tt.reason, tt.message); got != tt.want {
				t.Errorf("Annotate(%q, %q) = %q, want %q", tt.reason, tt.message, got, tt.want)
			}
		})
	}
}

func TestForAlerts(t *testing.T) {
	links := NewLinks("https://docs.example.com/runbooks")
	for _, alert := range Alerts {
		if got, want := links.For(alert), "https://docs.example.com/runbooks/"+strings.ToLower(alert)+"/"; got != want {
			t.Errorf("For(%q) = %q, want %q", alert, got, want)
		}
	}
	if got := links.For("Unknown"); got != "" {
		t.Errorf("a name without a page gets no link, got %q", got)
	}
}
