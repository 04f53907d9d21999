// Package cli implements stagesetctl. Today it has get, reconcile, suspend,
// resume and version; the other commands of the specification (tree, build,
// diff, events, history) come with their own change.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/stageset/stageset-controller/internal/version"
)

// NewRootCommand returns the stagesetctl command tree writing to out.
func NewRootCommand(out io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "stagesetctl",
		Short:         "Inspect and operate StageSets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	k := &kubeOptions{}
	k.bindFlags(root.PersistentFlags())
	root.AddCommand(newGetCommand(k))
	root.AddCommand(newReconcileCommand(k))
	root.AddCommand(newSuspendCommand(k, true))
	root.AddCommand(newSuspendCommand(k, false))
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the stagesetctl version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "stagesetctl", version.String())
			return err
		},
	})
	return root
}
