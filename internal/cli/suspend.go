package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

type suspendOptions struct {
	all     bool
	timeout time.Duration
	now     func() time.Time
}

// newSuspendCommand returns `suspend` (suspend=true) or `resume`
// (suspend=false), as `flux suspend` and `flux resume` do: resume also asks
// for a run and waits for its outcome, like reconcile.
func newSuspendCommand(k *kubeOptions, suspend bool) *cobra.Command {
	o := &suspendOptions{now: time.Now}
	verb, short := "suspend", "Stop reconciling StageSets until they are resumed"
	if !suspend {
		verb, short = "resume", "Resume suspended StageSets and wait for their next run"
	}
	cmd := &cobra.Command{
		Use:   verb + " [NAME]",
		Short: short,
		Example: fmt.Sprintf(`  stagesetctl %[1]s shop -n apps
  stagesetctl %[1]s --all -n apps`, verb),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.all == (len(args) == 1) {
				return fmt.Errorf("%s needs a StageSet name or --all, not both", verb)
			}
			c, ns, err := k.client()
			if err != nil {
				return err
			}
			return o.run(cmd.Context(), cmd.OutOrStdout(), c, ns, args, suspend)
		},
	}
	cmd.Flags().BoolVar(&o.all, "all", false, fmt.Sprintf("%s every StageSet of the namespace.", verb))
	if !suspend {
		cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "How long to wait for each StageSet's run.")
	}
	return cmd
}

func (o *suspendOptions) run(ctx context.Context, out io.Writer, c client.Client, ns string, args []string, suspend bool) error {
	var names []string
	if o.all {
		list := &stagesetv1.StageSetList{}
		if err := c.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, obj := range list.Items {
			names = append(names, obj.Name)
		}
		if len(names) == 0 {
			return fmt.Errorf("no StageSets in namespace %s", ns)
		}
	} else {
		names = args
	}

	verb := "suspending"
	if !suspend {
		verb = "resuming"
	}
	patch := []byte(fmt.Sprintf(`{"spec":{"suspend":%t}}`, suspend))
	for _, name := range names {
		key := client.ObjectKey{Namespace: ns, Name: name}
		obj := &stagesetv1.StageSet{}
		obj.Namespace, obj.Name = ns, name
		fmt.Fprintf(out, "► %s StageSet %s\n", verb, key)
		if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			if apierrors.IsNotFound(err) {
				return fmt.Errorf("StageSet %s not found", key)
			}
			return fmt.Errorf("%s StageSet %s: %w", verb, key, err)
		}
		if suspend {
			fmt.Fprintf(out, "✔ StageSet %s suspended\n", key)
			continue
		}
		// A resumed StageSet runs at once (its generation changed); the
		// request token makes the wait for that run's outcome exact.
		r := &reconcileOptions{timeout: o.timeout, now: o.now}
		if err := r.run(ctx, out, c, key); err != nil {
			return err
		}
	}
	return nil
}
