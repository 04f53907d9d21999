// Package runbook links what an on-call engineer sees (a Ready message, a
// Warning event, an alert) to the runbook page that says what to do about
// it (SPEC §9, --runbook-base-url).
package runbook

import (
	"regexp"
	"slices"
	"strings"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Reasons are the Ready reasons that call for action, each with a page
// docs/runbooks/<reason lower-case>.md. Succeeded, Suspended and
// Progressing are not among them: nothing is wrong.
var Reasons = []string{
	stagesetv1.DependencyNotReadyReason,
	stagesetv1.SourceNotReadyReason,
	stagesetv1.ArtifactFailedReason,
	stagesetv1.BuildFailedReason,
	stagesetv1.StageFailedReason,
	stagesetv1.MigrationFailedReason,
	stagesetv1.RolledBackReason,
	stagesetv1.RollbackFailedReason,
	stagesetv1.UpdateDeferredReason,
	stagesetv1.InvalidSpecReason,
	stagesetv1.ReconciliationFailedReason,
	stagesetv1.AccessDeniedReason,
}

// Alerts are the shipped alerts that are not about one Ready reason, each
// with a page docs/runbooks/<alert lower-case>.md. StageSetReconcileErrorsHigh
// links to the page of the reason its series carries.
var Alerts = []string{
	"StageSetControllerWorkqueueDepthHigh",
	"StageSetReconcileLatencyHigh",
	"StageSetControllerPodDown",
	"StageSetWebhookCertRenewalFailing",
}

// Page is the name of the runbook page of a reason or alert, without its
// extension.
func Page(name string) string { return strings.ToLower(name) }

// Links builds runbook links under a base URL; the zero value links nothing.
type Links struct {
	// Base is --runbook-base-url, without a trailing slash.
	Base string
}

// NewLinks returns the links under base ("" for none).
func NewLinks(base string) Links { return Links{Base: strings.TrimRight(base, "/")} }

// For is the link to the page of a reason or alert: "" when there is no
// base or the reason calls for no action.
func (l Links) For(reason string) string {
	if l.Base == "" || !(slices.Contains(Reasons, reason) || slices.Contains(Alerts, reason)) {
		return ""
	}
	return l.Base + "/" + Page(reason) + "/"
}

// suffix matches the runbook links a message already ends with. A link has
// no spaces (--runbook-base-url refuses them), but may hold parentheses.
var suffix = regexp.MustCompile(`( \(runbook: [^ ]*\))+$`)

// Annotate ends the message with " (runbook: <link>)" exactly once. A link a
// message already carries (a message carried over from an earlier run, or
// one written under another base) is replaced, not repeated; a reason
// without a page, or no base, leaves the message without a link.
func (l Links) Annotate(reason, message string) string {
	message = suffix.ReplaceAllString(message, "")
	if link := l.For(reason); link != "" {
		return message + " (runbook: " + link + ")"
	}
	return message
}
