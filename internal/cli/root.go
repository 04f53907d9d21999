// Package cli implements stagesetctl, which also runs as the Flux CLI plugin
// flux-stageset (`flux stageset ...`) and the kubectl plugin
// kubectl-stageset (`kubectl stageset ...`).
package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// The names the binary answers to. Each is the same program; help,
// examples and completion show the name it was called by.
const (
	nameStagesetctl = "stagesetctl"
	nameFlux        = "flux-stageset"
	nameKubectl     = "kubectl-stageset"
)

// DisplayName is how a user types the command that runs the binary called
// arg0: "flux stageset" for the Flux plugin, "kubectl stageset" for the
// kubectl plugin, else "stagesetctl".
func DisplayName(arg0 string) string {
	base := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	switch base {
	case nameFlux:
		return "flux stageset"
	case nameKubectl, "kubectl_complete-stageset":
		return "kubectl stageset"
	}
	return nameStagesetctl
}

// ExitError carries an exit code other than 1 (diff exits 1 for changes
// and 2 for errors, so that CI can tell them apart).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs the command line args of the binary called arg0 and returns the
// exit code: 0, 1 for an error (printed as one line on errOut), or the
// code of an ExitError.
func Main(arg0 string, args []string, out, errOut io.Writer) int {
	if strings.TrimSuffix(filepath.Base(arg0), ".exe") == kubectlCompleteName {
		// kubectl passes the words to complete, cobra's protocol wants them
		// after __complete.
		args = append([]string{cobra.ShellCompRequestCmd}, args...)
	}
	cmd := NewCommand(DisplayName(arg0), out)
	cmd.SetErr(errOut)
	cmd.SetArgs(args)
	ran, err := cmd.ExecuteC()
	if err == nil {
		return 0
	}
	code := 1
	// A command whose exit codes carry meaning (diff: 1 = changes) says
	// what any other error exits with, a bad flag included.
	if c, convErr := strconv.Atoi(ran.Annotations[errorExitCodeAnnotation]); convErr == nil {
		code = c
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		code = exit.Code
		err = exit.Err
	}
	if err != nil {
		fmt.Fprintln(errOut, "✗", printable(explain(err).Error()))
	}
	return code
}

// errorExitCodeAnnotation on a command sets the exit code of its errors.
const errorExitCodeAnnotation = "stageset.io/error-exit-code"

// NewRootCommand returns the stagesetctl command tree writing to out.
func NewRootCommand(out io.Writer) *cobra.Command {
	return NewCommand(nameStagesetctl, out)
}

// NewCommand returns the command tree as the user calls it: name is
// "stagesetctl", "flux stageset" or "kubectl stageset".
func NewCommand(name string, out io.Writer) *cobra.Command {
	root := &cobra.Command{
		// The executable's name: cobra names completion scripts after it.
		Use:           executableName(name),
		Short:         "Inspect and operate StageSets",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	if name != nameStagesetctl {
		// cobra prints this name in usage lines and completion scripts.
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: name}
	}
	root.SetOut(out)
	k := newKubeOptions()
	k.bindFlags(root.PersistentFlags())
	root.AddCommand(newGetCommand(k))
	root.AddCommand(newReconcileCommand(k))
	root.AddCommand(newSuspendCommand(k, true))
	root.AddCommand(newSuspendCommand(k, false))
	root.AddCommand(newVersionCommand(k))
	root.AddCommand(newTreeCommand(k), newEventsCommand(k), newHistoryCommand(k))
	root.AddCommand(newBuildCommand(k), newDiffCommand(k))
	root.AddCommand(newCompletionCommand(name))

	// Examples and long help are written for stagesetctl; show them as the
	// user types them.
	if name != nameStagesetctl {
		var rename func(c *cobra.Command)
		rename = func(c *cobra.Command) {
			c.Example = strings.ReplaceAll(c.Example, nameStagesetctl+" ", name+" ")
			c.Long = strings.ReplaceAll(c.Long, nameStagesetctl+" ", name+" ")
			for _, sub := range c.Commands() {
				rename(sub)
			}
		}
		rename(root)
	}
	registerCompletions(root, k)
	return root
}
