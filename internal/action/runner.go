// Package action runs the stage actions of a StageSet (SPEC §8): patch an
// object, call a URL, wait for a duration or a CEL condition, and run Jobs to
// completion. It holds no controller state; the controller builds a Runner
// with the StageSet's impersonated client and calls it around each stage.
package action

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// The verbs an action can carry, as returned by Verb.
const (
	VerbPatch = "patch"
	VerbHTTP  = "http"
	VerbJob   = "job"
	VerbWait  = "wait"
)

// pollInterval is how often wait and job actions re-read the cluster. A
// second keeps the API server load of a few waiting actions negligible while
// staying well below any sensible action timeout.
const pollInterval = time.Second

// Runner runs actions through one identity: the StageSet's impersonated
// client, so an action can do no more than the StageSet's service account.
type Runner struct {
	// Client patches and reads targets, creates Jobs and reads the Secrets
	// of HTTP headers.
	Client client.Client

	// Namespace is the StageSet's namespace: where headersFrom Secrets live
	// and the default namespace of namespaced targets and Jobs.
	Namespace string

	// AllowedHosts are the --allowed-action-hosts globs (path.Match syntax)
	// an HTTP action's host must match. When empty, any host is allowed
	// except those resolving to loopback, link-local, private and other
	// non-public addresses.
	AllowedHosts []string

	// Logs reads the log tail of a failed Job's pod for the failure
	// message; nil leaves it out.
	Logs LogReader

	// HTTPClient sends HTTP actions. When nil, Run builds a client that
	// follows no redirects and enforces the host policy at dial time. An
	// injected client is used as is: only the AllowedHosts check applies.
	HTTPClient *http.Client
}

// Verb returns the verb an action carries: "patch", "http", "job" or
// "wait", or "" when it carries none.
func Verb(a stagesetv1.Action) string {
	switch {
	case a.Patch != nil:
		return VerbPatch
	case a.HTTP != nil:
		return VerbHTTP
	case a.Job != nil:
		return VerbJob
	case a.Wait != nil:
		return VerbWait
	}
	return ""
}

// Timeout is the budget of an action: its own timeout, else def.
func Timeout(a stagesetv1.Action, def time.Duration) time.Duration {
	if a.Timeout != nil && a.Timeout.Duration > 0 {
		return a.Timeout.Duration
	}
	return def
}

// Run runs one action bounded by its timeout (a.Timeout, else
// defaultTimeout) and returns an error saying what failed.
//
// Job actions are not run here: their Jobs come from the stage's artifact,
// which only the controller has. The controller builds them and calls
// RunJobs; Run refuses a job action so that a caller forgetting this fails
// loudly instead of silently skipping the action.
func (r *Runner) Run(ctx context.Context, a stagesetv1.Action, defaultTimeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout(a, defaultTimeout))
	defer cancel()

	var err error
	switch Verb(a) {
	case VerbPatch:
		err = r.patch(ctx, a.Patch)
	case VerbHTTP:
		err = r.http(ctx, a.HTTP)
	case VerbWait:
		err = r.wait(ctx, a.Wait)
	case VerbJob:
		err = fmt.Errorf("job actions are run by the controller through RunJobs")
	default:
		err = fmt.Errorf("the action sets none of patch, http, job or wait")
	}
	if err != nil {
		return fmt.Errorf("%s action %q: %w", Verb(a), a.Name, err)
	}
	return nil
}

// object returns an empty object of the reference's kind with its name and
// namespace set. The namespace defaults to the Runner's for namespaced kinds
// and is cleared for cluster-scoped ones, which have none.
func (r *Runner) object(ref stagesetv1.ObjectReference) (*unstructured.Unstructured, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("invalid apiVersion %q: %w", ref.APIVersion, err)
	}
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(gv.WithKind(ref.Kind))
	obj.SetName(ref.Name)
	namespaced, err := r.Client.IsObjectNamespaced(obj)
	if err != nil {
		return nil, fmt.Errorf("unknown kind %s %s: %w", ref.APIVersion, ref.Kind, err)
	}
	if namespaced {
		ns := ref.Namespace
		if ns == "" {
			ns = r.Namespace
		}
		obj.SetNamespace(ns)
	}
	return obj, nil
}
