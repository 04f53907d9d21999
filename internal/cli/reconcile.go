package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// reconcilePoll is how often reconcile reads the StageSet while it waits.
const reconcilePoll = time.Second

type reconcileOptions struct {
	force      bool
	quiet      bool
	withSource bool
	timeout    time.Duration
	// live redraws a line per stage in place (on a terminal).
	live bool
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
on a rolled back revision set. With --with-source, every source the stages
name is reconciled first, and its new artifact waited for.

On a terminal each stage has a line that is updated in place; elsewhere a
line is printed whenever a stage changes phase.`,
		Example: `  stagesetctl reconcile shop -n apps
  stagesetctl reconcile shop -n apps --with-source
  stagesetctl reconcile shop -n apps --force --timeout 10m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := k.client()
			if err != nil {
				return err
			}
			o.live = isTerminal(cmd.OutOrStdout())
			return o.run(cmd.Context(), cmd.OutOrStdout(), c, client.ObjectKey{Namespace: ns, Name: args[0]})
		},
	}
	cmd.Flags().BoolVar(&o.force, "force", false, "Also stamp reconcile.fluxcd.io/forceAt: a change deferred by a closed update window rolls out once.")
	cmd.Flags().BoolVar(&o.quiet, "quiet", false, "Print only the outcome, not the stages as they progress.")
	cmd.Flags().BoolVar(&o.withSource, "with-source", false, "First reconcile every source the stages name and wait for its new artifact.")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "How long to wait for the controller (and, with --with-source, the sources first) to handle the request.")
	return cmd
}

func (o *reconcileOptions) run(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey) error {
	obj, err := getStageSet(ctx, c, key)
	if err != nil {
		return err
	}
	if obj.Spec.Suspend {
		return fmt.Errorf("StageSet %s is suspended: resume it first", key)
	}

	// One deadline for the whole request, sources included.
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	token := o.now().Format(time.RFC3339Nano)
	if o.withSource {
		if err := o.reconcileSources(ctx, out, c, obj, token); err != nil {
			return err
		}
	}

	// Only what changes from here on is printed.
	progress := newStageProgress(out, o.live && !o.quiet)
	progress.skip(obj)
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

	for {
		if err := c.Get(ctx, key, obj); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("timed out after %s waiting for StageSet %s to handle the request", o.timeout, key)
			}
			return err
		}
		if !o.quiet {
			progress.show(obj)
		}
		if done, err := handled(obj, token, o.force); done {
			progress.end()
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

// stageProgress shows the stages as a run goes: a line per stage updated
// in place on a terminal (live), else a line whenever a stage changes.
type stageProgress struct {
	out   io.Writer
	live  bool
	block liveBlock
	// seen holds the state printed per stage (appended lines).
	seen map[string]string
	// changed is set once a stage moved: until then a live view stays
	// empty, as the appended lines print nothing for an idle StageSet.
	changed bool
	start   map[string]string
}

func newStageProgress(out io.Writer, live bool) *stageProgress {
	return &stageProgress{out: out, live: live, block: liveBlock{out: out}, seen: map[string]string{}}
}

// skip records the stages' state before the request: only changes from
// there on are shown.
func (p *stageProgress) skip(obj *stagesetv1.StageSet) {
	p.start = map[string]string{}
	for _, st := range obj.Status.Stages {
		p.seen[st.Name] = stageState(st)
		p.start[st.Name] = stageState(st)
	}
}

func (p *stageProgress) show(obj *stagesetv1.StageSet) {
	if !p.live {
		for _, st := range obj.Status.Stages {
			if p.seen[st.Name] == stageState(st) {
				continue
			}
			p.seen[st.Name] = stageState(st)
			fmt.Fprintln(p.out, "  "+stageLine(st))
		}
		return
	}
	if !p.changed {
		for _, st := range obj.Status.Stages {
			if p.start[st.Name] != stageState(st) {
				p.changed = true
			}
		}
		if !p.changed {
			return
		}
	}
	var text strings.Builder
	for _, st := range obj.Status.Stages {
		fmt.Fprintf(&text, "%s %s\n", phaseSymbol(st.Phase), stageLine(st))
	}
	p.block.draw(text.String())
}

// end keeps what the live view shows.
func (p *stageProgress) end() { p.block.keep() }

// stageState is what a new appended line is printed for: the stage's phase
// and revision (a message that changes while a stage verifies is not news).
func stageState(st stagesetv1.StageStatus) string {
	return string(st.Phase) + " " + st.Revision
}

func stageLine(st stagesetv1.StageStatus) string {
	line := fmt.Sprintf("stage %s: %s", st.Name, st.Phase)
	if st.Message != "" {
		line += " (" + oneLine(st.Message) + ")"
	}
	return line
}

func phaseSymbol(phase stagesetv1.StagePhase) string {
	switch phase {
	case stagesetv1.StagePhaseReady:
		return "✔"
	case stagesetv1.StagePhaseFailed:
		return "✗"
	case stagesetv1.StagePhasePending, "":
		return "·"
	}
	return "◎"
}
