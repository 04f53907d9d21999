package cli

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

type historyOptions struct {
	output string
	// now is what WHEN is relative to; tests set it.
	now func() time.Time
}

func newHistoryCommand(k *kubeOptions) *cobra.Command {
	return historyCommand(k, &historyOptions{now: time.Now})
}

func historyCommand(k *kubeOptions, o *historyOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "Show the last rollouts of a StageSet: revision set, result, duration, when",
		Long: `History prints status.history of a StageSet, oldest first: the revision
set each rollout applied, the Ready reason it ended with, how long it took
and when it started. The controller keeps the last few rollouts.`,
		Example: `  stagesetctl history shop -n apps
  stagesetctl history shop -n apps -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "yaml", "json"); err != nil {
				return err
			}
			_, obj, err := k.stageSet(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.print(cmd.OutOrStdout(), obj)
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "Output format: yaml or json (default: a table).")
	return cmd
}

func (o *historyOptions) print(out io.Writer, obj *stagesetv1.StageSet) error {
	// The controller keeps the newest first; like flux and helm history,
	// show the newest last, next to the prompt.
	records := slices.Clone(obj.Status.History)
	slices.Reverse(records)

	switch o.output {
	case "yaml", "json":
		if records == nil {
			records = []stagesetv1.RolloutRecord{}
		}
		return printStructured(out, o.output, records)
	}

	if len(records) == 0 {
		_, err := fmt.Fprintf(out, "No rollouts recorded for StageSet %s/%s.\n", obj.Namespace, obj.Name)
		return err
	}
	t := newTable("REVISIONS", "RESULT", "DURATION", "WHEN")
	for _, r := range records {
		t.add(revisionSet(r.Revisions, obj.Namespace), r.Result, roundDuration(r.Duration.Duration), ago(o.now(), r.StartedAt.Time))
	}
	return t.print(out)
}

// revisionSet prints a revision set as sorted source=revision pairs, the
// sources of the StageSet's namespace ns as Kind/name. With a single
// source, the revision alone says it all.
func revisionSet(revisions map[string]string, ns string) string {
	switch len(revisions) {
	case 0:
		return "-"
	case 1:
		for _, rev := range revisions {
			return rev
		}
	}
	pairs := make([]string, 0, len(revisions))
	for _, key := range slices.Sorted(maps.Keys(revisions)) {
		source := key
		if kind, rest, ok := strings.Cut(key, "/"); ok && strings.HasPrefix(rest, ns+"/") {
			source = kind + "/" + strings.TrimPrefix(rest, ns+"/")
		}
		pairs = append(pairs, source+"="+revisions[key])
	}
	return strings.Join(pairs, ", ")
}

// roundDuration drops the sub-second noise of a rollout's duration.
func roundDuration(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
