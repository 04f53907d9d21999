// Package plugins_test runs stagesetctl through the real Flux CLI as the
// plugin flux-stageset (Flux RFC-0013: discovery in $FLUXCD_PLUGINS,
// completion delegated to the plugin's `__complete`) and through kubectl as
// kubectl-stageset (PATH, completion by kubectl_complete-stageset): the
// arguments passed through, the exit code, the name in the help. It is a
// module of its own so that the hosts' dependencies stay out of the
// controller's go.mod.
package plugins_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the controller's checkout (this module is tests/flux).
var repoRoot, _ = filepath.Abs(filepath.Join("..", ".."))

func goCmd(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, exit.Stderr)
		}
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// fluxCLI builds the Flux CLI at the version of go.mod, once: it is kept
// in bin/flux/<version>/ of the checkout, like the test API server.
//
// The flux2 module cannot be built as is: cmd/flux embeds install
// manifests its Makefile generates (manifests/*.yaml, not in the module).
// The build copies the module, adds an empty manifest (only `flux install`
// reads them) and builds the copy with this module's go.sum.
func fluxCLI(t *testing.T) string {
	t.Helper()
	version := goCmd(t, ".", "list", "-m", "-f", "{{.Version}}", "github.com/fluxcd/flux2/v2")
	bin := filepath.Join(repoRoot, "bin", "flux", version, "flux")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	t.Logf("building the Flux CLI %s from the Go module proxy into %s (the first build takes minutes)", version, bin)
	tmp := t.TempDir()
	src := filepath.Join(tmp, "flux2")
	if err := os.CopyFS(src, os.DirFS(goCmd(t, ".", "list", "-m", "-f", "{{.Dir}}", "github.com/fluxcd/flux2/v2"))); err != nil {
		t.Fatal(err)
	}
	manifests := filepath.Join(src, "cmd", "flux", "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manifests, "empty.yaml"), []byte("# not generated: flux install is not tested here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(tmp, "wrapper")
	if err := os.MkdirAll(wrapper, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(wrapper, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd(t, wrapper, "mod", "edit", "-replace", "github.com/fluxcd/flux2/v2="+src)
	goCmd(t, wrapper, "build", "-o", bin, "github.com/fluxcd/flux2/v2/cmd/flux")
	return bin
}

// kubectlCLI builds kubectl (cmd/kubectl of this module) at the
// k8s.io/kubectl version of go.mod, once, into bin/kubectl/<version>/.
func kubectlCLI(t *testing.T) string {
	t.Helper()
	version := goCmd(t, ".", "list", "-m", "-f", "{{.Version}}", "k8s.io/kubectl")
	bin := filepath.Join(repoRoot, "bin", "kubectl", version, "kubectl")
	if _, err := os.Stat(bin); err != nil {
		t.Logf("building kubectl %s into %s (the first build takes minutes)", version, bin)
		goCmd(t, ".", "build", "-o", bin, "./cmd/kubectl")
	}
	return bin
}

// pluginDir builds stagesetctl into a fresh directory under the given
// names (hard links, as make cli makes them).
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	goCmd(t, repoRoot, "build", "-ldflags", "-X github.com/stageset/stageset-controller/internal/version.Version=v0.0.0-plugin-test",
		"-o", filepath.Join(dir, names[0]), "./cmd/stagesetctl")
	for _, name := range names[1:] {
		if err := os.Link(filepath.Join(dir, names[0]), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// run runs a host CLI with env added; HOME is empty so that no plugin or
// kubeconfig of the machine takes part.
func run(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	home := t.TempDir()
	cmd.Env = append(append(os.Environ(), "HOME="+home, "KUBECONFIG="+filepath.Join(home, "none")), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

func runFlux(t *testing.T, flux, plugins string, args ...string) (int, string, string) {
	t.Helper()
	return run(t, flux, []string{"FLUXCD_PLUGINS=" + plugins}, args...)
}

func runKubectl(t *testing.T, kubectl, plugins string, args ...string) (int, string, string) {
	t.Helper()
	return run(t, kubectl, []string{"PATH=" + plugins + string(os.PathListSeparator) + os.Getenv("PATH")}, args...)
}

// completions are the candidates of cobra's __complete output, without
// descriptions or the directive line.
func completions(out string) []string {
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if name, _, _ := strings.Cut(line, "\t"); name != "" && !strings.HasPrefix(name, ":") {
			names = append(names, name)
		}
	}
	return names
}

func TestFluxRunsThePlugin(t *testing.T) {
	flux, plugins := fluxCLI(t), pluginDir(t, "flux-stageset")

	code, out, errOut := runFlux(t, flux, plugins, "--help")
	if code != 0 || !strings.Contains(out, "Plugin Commands:") || !strings.Contains(out, "\n  stageset ") {
		t.Fatalf("flux --help does not list the plugin (exit %d):\n%s%s", code, out, errOut)
	}

	code, out, errOut = runFlux(t, flux, plugins, "stageset", "version", "--client")
	if code != 0 || out != "flux-stageset: v0.0.0-plugin-test\n" {
		t.Fatalf("flux stageset version --client: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = runFlux(t, flux, plugins, "stageset", "reconcile", "--help")
	if code != 0 || !strings.Contains(out, "Usage:\n  flux stageset reconcile NAME") || !strings.Contains(out, "  flux stageset reconcile shop") {
		t.Fatalf("flux stageset reconcile --help shows another name:\n%s", out)
	}

	// The plugin's exit code and one-line error come through.
	code, out, errOut = runFlux(t, flux, plugins, "stageset", "get", "--frobnicate")
	if code != 1 || errOut != "✗ unknown flag: --frobnicate\n" {
		t.Fatalf("flux stageset get --frobnicate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	// Without the plugin, flux knows no such command.
	if code, _, _ := runFlux(t, flux, t.TempDir(), "stageset", "version", "--client"); code == 0 {
		t.Fatal("flux ran stageset with an empty plugin directory")
	}
}

// flux's completion script asks `flux __complete ...`, which asks the
// plugin's `__complete`.
func TestFluxCompletesThePlugin(t *testing.T) {
	flux, plugins := fluxCLI(t), pluginDir(t, "flux-stageset")
	for args, want := range map[string][]string{
		"stageset ":             {"completion", "get", "reconcile", "version"},
		"stageset completion ":  {"bash", "fish", "powershell", "zsh"},
		"stageset get -o ":      {"json", "yaml"},
		"stageset version --cl": {"--client"},
	} {
		code, out, errOut := runFlux(t, flux, plugins, append([]string{"__complete"}, strings.Split(args, " ")...)...)
		if code != 0 {
			t.Fatalf("flux __complete %s: exit %d\n%s", args, code, errOut)
		}
		if got := completions(out); !containsAll(got, want) {
			t.Errorf("flux __complete %s: %q, want %q among them", args, got, want)
		}
	}
}

func containsAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

func TestKubectlRunsThePlugin(t *testing.T) {
	kubectl, plugins := kubectlCLI(t), pluginDir(t, "kubectl-stageset")

	code, out, errOut := runKubectl(t, kubectl, plugins, "stageset", "version", "--client")
	if code != 0 || out != "kubectl-stageset: v0.0.0-plugin-test\n" {
		t.Fatalf("kubectl stageset version --client: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runKubectl(t, kubectl, plugins, "stageset", "reconcile", "--help")
	if code != 0 || !strings.Contains(out, "Usage:\n  kubectl stageset reconcile NAME") || !strings.Contains(out, "  kubectl stageset reconcile shop") {
		t.Fatalf("kubectl stageset reconcile --help shows another name:\n%s", out)
	}
	code, out, errOut = runKubectl(t, kubectl, plugins, "stageset", "get", "--frobnicate")
	if code != 1 || errOut != "✗ unknown flag: --frobnicate\n" {
		t.Fatalf("kubectl stageset get --frobnicate: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// kubectl completes a plugin's arguments only through the executable
// kubectl_complete-<plugin> on PATH: make cli's hard link to the binary, or
// the script the release archives carry.
func TestKubectlCompletesThePlugin(t *testing.T) {
	kubectl := kubectlCLI(t)
	complete := func(plugins string, args ...string) []string {
		t.Helper()
		code, out, errOut := runKubectl(t, kubectl, plugins, append([]string{"__complete", "stageset"}, args...)...)
		if code != 0 {
			t.Fatalf("kubectl __complete stageset %v: exit %d\n%s", args, code, errOut)
		}
		return completions(out)
	}

	linked := pluginDir(t, "kubectl-stageset", "kubectl_complete-stageset")
	script := pluginDir(t, "kubectl-stageset")
	data, err := os.ReadFile(filepath.Join(repoRoot, "hack", "release", "kubectl_complete-stageset"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(script, "kubectl_complete-stageset"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, plugins := range []string{linked, script} {
		if got := complete(plugins, "completion", ""); !containsAll(got, []string{"bash", "fish", "powershell", "zsh"}) {
			t.Errorf("kubectl __complete stageset completion: %q", got)
		}
		if got := complete(plugins, "get", "-o", ""); !containsAll(got, []string{"json", "yaml"}) {
			t.Errorf("kubectl __complete stageset get -o: %q", got)
		}
	}
	// Without the helper kubectl has nothing to offer.
	if got := complete(pluginDir(t, "kubectl-stageset"), "completion", ""); slices.Contains(got, "bash") {
		t.Errorf("kubectl completed the plugin without kubectl_complete-stageset: %q", got)
	}
}
