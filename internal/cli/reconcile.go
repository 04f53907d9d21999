package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// reconcilePoll is how often reconcile reads the StageSet while it waits.
const reconcilePoll = time.Second

type reconcileOptions struct {
	force   bool
	quiet   bool
	timeout time.Duration
	// now stamps the request token; tests set it.
	now func() time.Time
}

func newReconcileCommand(k *kubeOptions) *cobra.Command {
	o := &reconcileOptions{now: time.Now}
	cmd := &cobra.Command{
		Use:   "reconcile NAME",
		Short: "Ask the controller to reconcile a StageSet now, and wait for the outcome",
		Long: `Stamps reconcile.fluxcd.io/requestedAt on the StageSet (and, with --force,
reconcile.fluxcd.io/forceAt, which also lets a change held by a closed update
window roll out once), shows the stages as they progress, and waits until the
controller has handled the request: exit 0 when the StageSet is Ready,
non-zero with its Ready message otherwise. A new request also lifts the hold
on a rolled back revision set.`,
		Example: `  stagesetctl reconcile shop -n apps
  stagesetctl reconcile shop -n apps --force --timeout 10m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := k.client()
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "Also stamp reconcile.fluxcd.io/forceAt: a change deferred by a closed update window rolls out once.")
	cmd.Flags().BoolVar(&o.quiet, "quiet", false, "Print only the outcome, not the stages as they progress.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "How long to wait for the controller to handle the request.")
	return cmd
}

func (o *reconcileOptions) run(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey) error {
	obj := &stagesetv1.StageSet{}
	if err := c.Get(ctx, key, obj); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("StageSet %s not found", key)
		}
		return err
	}
	if obj.Spec.Suspend {
		return fmt.Errorf("StageSet %s is suspended: resume it first", key)
	}

	// Only what changes from here on is printed.
	phases := map[string]string{}
	printStages(io.Discard, obj, phases)

	token := o.now().Format(time.RFC3339Nano)
	patch := client.MergeFrom(obj.DeepCopy())
	annotations := obj.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[meta.ReconcileRequestAnnotation] = token
	if o.force {
		annotations[meta.ForceRequestAnnotation] = token
	}
	obj.SetAnnotations(annotations)
	fmt.Fprintf(out, "► annotating StageSet %s\n", key)
	if err := c.Patch(ctx, obj, patch); err != nil {
		return fmt.Errorf("annotating StageSet %s: %w", key, err)
	}
	fmt.Fprintln(out, "◎ waiting for the StageSet to be reconciled")

	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	for {
		if err := c.Get(ctx, key, obj); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("timed out after %s waiting for StageSet %s to handle the request", o.timeout, key)
			}
			return err
		}
		if !o.quiet {
			printStages(out, obj, phases)
		}
		if done, err := handled(obj, token, o.force); done {
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "✔ applied revision %s\n", obj.Status.LastAppliedRevision)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for StageSet %s to handle the request", o.timeout, key)
		case <-time.After(reconcilePoll):
		}
	}
}

// handled tells whether the controller has acted on the request token and
// decided the outcome: the token recorded, the generation observed and Ready
// no longer Unknown. A Ready=False outcome is returned as the error, with
// the controller's message (and its runbook link).
func handled(obj *stagesetv1.StageSet, token string, force bool) (bool, error) {
	if obj.Status.LastHandledReconcileAt != token || (force && obj.Status.LastHandledForceAt != token) {
		return false, nil
	}
	if obj.Status.ObservedGeneration != obj.Generation {
		return false, nil
	}
	ready := conditions.Get(obj, meta.ReadyCondition)
	if ready == nil || ready.Status == metav1.ConditionUnknown {
		return false, nil
	}
	if ready.Status == metav1.ConditionFalse {
		return true, errors.New(ready.Reason + ": " + ready.Message)
	}
	return true, nil
}

// printStages prints a line for every stage whose phase changed since the
// last call (seen holds the phases printed).
func printStages(out io.Writer, obj *stagesetv1.StageSet, seen map[string]string) {
	for _, st := range obj.Status.Stages {
		state := string(st.Phase) + " " + st.Revision
		if seen[st.Name] == state {
			continue
		}
		seen[st.Name] = state
		fmt.Fprintf(out, "  stage %s: %s", st.Name, st.Phase)
		if st.Message != "" {
			fmt.Fprintf(out, " (%s)", st.Message)
		}
		fmt.Fprintln(out)
	}
}
