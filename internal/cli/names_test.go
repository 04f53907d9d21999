package cli

import (
	"bytes"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
)

// The names a user calls the binary by, and how the command then reads.
var callNames = []struct{ arg0, name, exe string }{
	{"/usr/local/bin/stagesetctl", "stagesetctl", "stagesetctl"},
	{"/home/u/.fluxcd/plugins/flux-stageset", "flux stageset", "flux-stageset"},
	{"/usr/local/bin/kubectl-stageset", "kubectl stageset", "kubectl-stageset"},
}

func TestDisplayName(t *testing.T) {
	for arg0, want := range map[string]string{
		"stagesetctl":                                  "stagesetctl",
		"./bin/stagesetctl":                            "stagesetctl",
		"stagesetctl.exe":                              "stagesetctl",
		"flux-stageset":                                "flux stageset",
		"/home/u/.fluxcd/plugins/flux-stageset":        "flux stageset",
		"flux-stageset.exe":                            "flux stageset",
		"kubectl-stageset":                             "kubectl stageset",
		"/usr/local/bin/kubectl-stageset.exe":          "kubectl stageset",
		"/usr/local/bin/kubectl_complete-stageset":     "kubectl stageset",
		"some-renamed-copy":                            "stagesetctl",
		"/usr/local/bin/flux-stageset-old":             "stagesetctl",
		"/usr/local/bin/kubectl-stageset/not-the-name": "stagesetctl",
	} {
		if got := DisplayName(arg0); got != want {
			t.Errorf("DisplayName(%q) = %q, want %q", arg0, got, want)
		}
	}
}

// execute runs the command tree as called by name and returns its output.
func execute(t *testing.T, name string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := NewCommand(name, &out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out.String()
}

func TestHelpShowsTheNameItWasCalledBy(t *testing.T) {
	for _, n := range callNames {
		t.Run(n.exe, func(t *testing.T) {
			g := NewWithT(t)
			help := execute(t, n.name, "reconcile", "--help")
			g.Expect(help).To(ContainSubstring("Usage:\n  " + n.name + " reconcile NAME"))
			g.Expect(help).To(ContainSubstring("\n  " + n.name + " reconcile shop -n apps"))
			if n.name != "stagesetctl" {
				g.Expect(help).NotTo(ContainSubstring("stagesetctl"))
			}
			// Every example of every command, not only reconcile's.
			root := NewCommand(n.name, &bytes.Buffer{})
			walkCommands(root, func(c *cobra.Command) {
				for _, line := range strings.Split(c.Example, "\n") {
					if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
						g.Expect(line).To(HavePrefix(n.name+" "), "an example of %q", c.CommandPath())
					}
				}
				g.Expect(c.CommandPath()).To(HavePrefix(n.name))
			})
		})
	}
}

func walkCommands(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, f)
	}
}

// The root's help under each name, as a golden file: the commands, the
// usage line and the flags a user sees.
func TestRootHelpGolden(t *testing.T) {
	// The default of --cache-dir is under $HOME.
	t.Setenv("HOME", "/home/user")
	for _, n := range callNames {
		t.Run(n.exe, func(t *testing.T) {
			golden(t, "help-"+n.exe+".golden", execute(t, n.name, "--help"))
		})
	}
}

func TestCompletionScriptNamesTheExecutable(t *testing.T) {
	for _, n := range callNames {
		t.Run(n.exe, func(t *testing.T) {
			g := NewWithT(t)
			bash := execute(t, n.name, "completion", "bash")
			g.Expect(bash).To(ContainSubstring("complete -o default -F __start_" + n.exe + " " + n.exe + "\n"))
			zsh := execute(t, n.name, "completion", "zsh")
			g.Expect(zsh).To(HavePrefix("#compdef " + n.exe + "\n"))
			fish := execute(t, n.name, "completion", "fish")
			g.Expect(fish).To(ContainSubstring("complete -c " + n.exe + " "))
			if n.name != "stagesetctl" {
				for _, script := range []string{bash, zsh, fish} {
					g.Expect(script).NotTo(ContainSubstring("stagesetctl"))
				}
			}
			help := execute(t, n.name, "completion", "--help")
			g.Expect(help).To(ContainSubstring("source <(" + n.exe + " completion bash)"))
		})
	}
	// The plugins point at the completion of their host.
	g := NewWithT(t)
	g.Expect(execute(t, "kubectl stageset", "completion", "bash")).To(ContainSubstring("kubectl_complete-stageset"))
	g.Expect(execute(t, "kubectl stageset", "completion", "--help")).To(ContainSubstring("kubectl_complete-stageset"))
	g.Expect(execute(t, "flux stageset", "completion", "--help")).To(ContainSubstring(`flux-stageset __complete`))

	var out bytes.Buffer
	cmd := NewCommand("stagesetctl", &out)
	cmd.SetArgs([]string{"completion", "tcsh"})
	g.Expect(cmd.Execute()).To(MatchError(ContainSubstring(`invalid argument "tcsh"`)))
}

func TestOutputFlagCompletesItsFormats(t *testing.T) {
	g := NewWithT(t)
	out := execute(t, "stagesetctl", cobra.ShellCompRequestCmd, "get", "-o", "")
	g.Expect(strings.Split(out, "\n")).To(ContainElements("yaml", "json"))
	g.Expect(out).To(ContainSubstring(":4\n"), "no file completion")

	// Every -o flag of every command, present and future, completes what its
	// usage names.
	walkCommands(NewRootCommand(&bytes.Buffer{}), func(c *cobra.Command) {
		if f := c.Flags().Lookup("output"); f != nil {
			_, ok := c.GetFlagCompletionFunc("output")
			g.Expect(ok).To(BeTrue(), "%s -o has no completion", c.CommandPath())
		}
	})
	// "a table" is the default with no -o, not a value -o takes.
	g.Expect(outputFormats("Output format: yaml, json or wide (default: a table).")).To(Equal([]string{"yaml", "json", "wide"}))
	out = execute(t, "stagesetctl", cobra.ShellCompRequestCmd, "get", "-o", "")
	for _, format := range strings.Split(out, "\n")[:3] {
		_, err := run(t, "get", "-o", format, "-n", "default")
		g.Expect(err).NotTo(HaveOccurred(), "get -o %s, as completed", format)
	}
	g.Expect(outputFormats("Where to write the output.")).To(BeEmpty())
}
