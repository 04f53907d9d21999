package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stageset/stageset-controller/internal/version"
)

func newVersionCommand(k *kubeOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the stagesetctl version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "stagesetctl", version.String())
			return err
		},
	}
}
