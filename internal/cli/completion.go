package cli

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// completionTimeout bounds the cluster calls made while the user waits for
// a <TAB>: a slow cluster must not freeze the shell.
const completionTimeout = 5 * time.Second

// kubectlCompleteName is the executable kubectl (1.26 or later) runs to
// complete `kubectl stageset ...`: kubectl_complete-<plugin> on PATH, with
// the words typed so far. Main runs it as `__complete`.
const kubectlCompleteName = "kubectl_complete-stageset"

var completionShells = []string{"bash", "zsh", "fish", "powershell"}

// executableName is the file name of the binary the user called by name
// ("flux stageset" → "flux-stageset"): the shells complete executables.
func executableName(name string) string { return strings.ReplaceAll(name, " ", "-") }

func newCompletionCommand(name string) *cobra.Command {
	exe := executableName(name)
	long := fmt.Sprintf(`Print the shell completion script of %[1]s: commands, flags, StageSet names
for NAME arguments, namespaces, kubeconfig contexts and -o values.

  bash:        source <(%[1]s completion bash)
  zsh:         %[1]s completion zsh > "${fpath[1]}/_%[1]s"
  fish:        %[1]s completion fish | source
  powershell:  %[1]s completion powershell | Out-String | Invoke-Expression`, exe)
	switch name {
	case "flux stageset":
		long = `flux completes "flux stageset ..." itself: the script of "flux completion <shell>"
asks the plugin, running "flux-stageset __complete ...". Nothing more to install.

` + long
	case "kubectl stageset":
		long = `kubectl (1.26 or later) completes "kubectl stageset ..." itself: the script of
"kubectl completion <shell>" runs the executable ` + kubectlCompleteName + ` from PATH,
which "make cli" and the release archives put next to kubectl-stageset.

` + long
	}
	return &cobra.Command{
		Use:       "completion " + strings.Join(completionShells, "|"),
		Short:     "Print the shell completion script",
		Long:      long,
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: completionShells,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(out, true)
			case "zsh":
				err = root.GenZshCompletion(out)
			case "fish":
				err = root.GenFishCompletion(out, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(out)
			}
			if err != nil {
				return err
			}
			// A trailing comment: zsh wants #compdef on the first line.
			switch name {
			case "flux stageset":
				_, err = fmt.Fprintln(out, `# "flux stageset" is completed by flux's own completion script, which runs "flux-stageset __complete"; this script completes flux-stageset run directly.`)
			case "kubectl stageset":
				_, err = fmt.Fprintln(out, `# "kubectl stageset" is completed by kubectl's own completion script, which runs `+kubectlCompleteName+` from PATH; this script completes kubectl-stageset run directly.`)
			}
			return err
		},
	}
}

// nameArg matches a NAME positional in a command's Use ("tree NAME",
// "get [NAME]", "build NAME|-f FILE").
var nameArg = regexp.MustCompile(`\bNAME\b`)

// registerCompletions walks the finished command tree, so that every
// command gets completion by convention, including ones added later: a NAME
// positional completes StageSet names of the namespace, an -o flag the
// formats its usage text names; --namespace and --context complete from the
// cluster and the kubeconfig.
func registerCompletions(root *cobra.Command, k *kubeOptions) {
	_ = root.RegisterFlagCompletionFunc("namespace", completeNamespaces(k))
	_ = root.RegisterFlagCompletionFunc("context", completeContexts(k))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.ValidArgsFunction == nil && nameArg.MatchString(strings.TrimPrefix(c.Use, c.Name())) {
			c.ValidArgsFunction = completeStageSetNames(k)
		}
		if f := c.Flags().Lookup("output"); f != nil {
			if _, ok := c.GetFlagCompletionFunc("output"); !ok {
				if formats := outputFormats(f.Usage); len(formats) > 0 {
					_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// knownFormats are the -o values any command may take; a command's own
// are those its flag usage names, so the help text and the completion
// cannot disagree.
var knownFormats = []string{"yaml", "json", "wide"}

var word = regexp.MustCompile(`[a-z]+`)

func outputFormats(usage string) []string {
	var formats []string
	for _, w := range word.FindAllString(usage, -1) {
		if slices.Contains(knownFormats, w) && !slices.Contains(formats, w) {
			formats = append(formats, w)
		}
	}
	return formats
}

// completeStageSetNames completes the first positional with the names of
// the StageSets in the namespace of -n or the kubeconfig.
func completeStageSetNames(k *kubeOptions) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ns, err := k.client()
		if err != nil {
			cobra.CompErrorln(explain(err).Error())
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		var list stagesetv1.StageSetList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			cobra.CompErrorln(explain(err).Error())
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, toComplete) {
				names = append(names, list.Items[i].Name)
			}
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func completeNamespaces(k *kubeOptions) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		c, _, err := k.client()
		if err != nil {
			cobra.CompErrorln(explain(err).Error())
			return nil, cobra.ShellCompDirectiveError
		}
		ctx, cancel := context.WithTimeout(context.Background(), completionTimeout)
		defer cancel()
		var list corev1.NamespaceList
		if err := c.List(ctx, &list); err != nil {
			cobra.CompErrorln(explain(err).Error())
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, ns := range list.Items {
			if strings.HasPrefix(ns.Name, toComplete) {
				names = append(names, ns.Name)
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func completeContexts(k *kubeOptions) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		raw, err := k.flags.ToRawKubeConfigLoader().RawConfig()
		if err != nil {
			cobra.CompErrorln(err.Error())
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for name := range raw.Contexts {
			if strings.HasPrefix(name, toComplete) {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
